"""The unit tier's Redis tests again, on a real Redis.

tests/unit runs them on fakeredis (our Lua scripts under lupa): collected here too, with this
folder's fixtures (`redis`, `redis_clients`: a real server), they show that fakeredis answers
as the real server does for what the code uses, so a pass in the unit tier means a pass here.
"""

from tests.unit.test_access_store import *  # noqa: F403  # the same tests, run on a real Redis
from tests.unit.test_request_rollup import *  # noqa: F403  # the same tests, run on a real Redis
