"""The whole API, fuzzed: schemathesis reads the served /openapi.json of a real `ccfleet api`
(real Redis, no worker: a request that would queue is a 529) and sends schema-valid and
schema-violating requests to every operation, with auth off and on. No input may be a 500,
and every answer must be one the document declares (status, content type, headers, body).

All of schemathesis's checks run, `positive_data_acceptance` too: a request valid by the
document is never refused as malformed. The document states the limits JSON Schema can
(api/openapi.py); tests/e2e/api_fuzz_hooks.py drops the valid cases breaking the few it cannot.
With auth off it runs three phases, schema-valid and schema-violating cases: the document's
examples, the coverage phase (the edges of every keyword and every undeclared method of each
operation) and fuzzing (random cases: CONFIG's max-examples per operation): some 5,000
cases, with the checks of every answer (status, content type, headers, body).

With auth on it runs the examples and fuzzing, some 350 cases: each passes the key gate, then
meets the validation that the coverage phase proves edge by edge with auth off, and
schemathesis's `ignored_auth` check sends each operation's first success again without the key
and with a wrong one (a 401 is due). The coverage phase with auth on took 28 of that mode's
48 s (2026-12-07) and proved nothing that the mode off did not."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr
from redis.asyncio import Redis as AsyncRedis

from shared.access.client_keys import KeyLimits, KeyStore
from shared.settings import Settings
from tests import loopback
from tests.conftest import Stack, StackFactory
from tests.processes import http_ok, wait_until

REPO = Path(__file__).resolve().parents[2]
SERVER_SECRET = "fuzz-server-secret-" + "0123456789abcdef" * 2
# 529 is the answer to a request no worker takes in time, 503 is /ready without workers: both
# are declared. A 500 (or any other 5xx) fails the run. A request valid by the document is
# never a 400 (nor 413, 415): schemathesis's defaults for valid data, with those two.
CONFIG = """
[checks.not_a_server_error]
expected-statuses = ["2XX", "3XX", "4XX", "503", "529"]

[checks.positive_data_acceptance]
expected-statuses = ["2XX", "3XX", "401", "403", "404", "409", "429", "503", "529"]

[generation]
max-examples = 20

# The Responses API's request body is the largest schema here: fewer random cases each.
[[operations]]
include-path-regex = "^/v1/responses"
generation.max-examples = 10
"""
# The rules the document cannot state drop the valid cases that break them.
HOOKS = "tests.e2e.api_fuzz_hooks"
# The coverage phase sends each operation's boundary cases (every keyword's edges, every
# undeclared method): about 3,600 in all, each mode, whatever the count below. Fuzzing then
# sends up to this many random cases per operation. Measured 2026-12-07 on this 2-core machine,
# auth off, 100 per operation, under a load average of 9 to 17 (other sessions): 4,910 cases in
# 163 s, schemathesis 45 s CPU, the front end 8 s; the coverage phase alone 12 s CPU for 3,641
# cases. Valid requests queue until their 529, so that wait is kept short (front_end). With 50,
# both modes side by side (load 2-5): 53 s each (before the Responses API's operations).
# Measured again 2026-12-07 (auth off, all 21 operations, load average 12 to 28: CPU-seconds,
# not wall): the coverage phase 4,686 cases, 22 s of schemathesis CPU and 12 s of the front
# end's; fuzzing at 50 a operation 729 cases, 30 s and 3 s; at 20, 359 cases, 17 s and 2 s
# (that run without POST /v1/messages, stopped by the too_slow health check: see fuzz). A random
# case costs schemathesis some 40 ms of CPU, a coverage case 5 ms: the coverage phase already
# sends every keyword's edges, and 20 random cases a operation (10 for the Responses API) add
# combinations of them at about half the CPU that 50 took.
RUN_TIMEOUT_S = 400  # a bound for a machine far busier than CI's, not a figure


async def new_admin_key(stack: Stack) -> str:
    client = AsyncRedis.from_url(stack.redis.url)
    try:
        _, secret = await KeyStore(client, SecretStr(SERVER_SECRET)).create(
            "fuzz", KeyLimits(admin=True)
        )
    finally:
        await client.aclose()
    return secret


def fuzz(
    stack: Stack, tmp_path: Path, *headers: str, phases: str = "examples,coverage,fuzzing"
) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    header_options = [option for header in headers for option in ("-H", header)]
    return subprocess.run(
        [
            *(sys.executable, "-m", "schemathesis.cli"),
            *("--config-file", str(config), "run", f"{stack.url}/openapi.json"),
            *("--checks", "all"),
            *("--workers", "2", "--seed", "17"),
            *("--phases", phases, "--no-color"),
            # Hypothesis's too_slow health check times the drawing of cases against the wall
            # clock: on a loaded machine it failed POST /v1/messages, whose schema is large, with
            # no request sent. How fast cases are drawn is not what this test proves.
            "--suppress-health-check=too_slow",
            # The front end accepts loopback names as Host when auth is off.
            *("-H", "Host: 127.0.0.1", *header_options),
        ],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
        cwd=tmp_path,  # its example database stays out of the work tree
        env={**os.environ, "SCHEMATHESIS_HOOKS": HOOKS, "PYTHONPATH": str(REPO)},
    )


def front_end(make_stack: StackFactory, auth: str) -> Stack:
    stack = make_stack(
        workers=0,
        wait_ready=False,
        CCFLEET_AUTH=auth,
        CCFLEET_AUTH_SECRET=SERVER_SECRET,
        CCFLEET_INTERACTIVE_MAX_WAIT_S="0.05",
        # Valid requests queue and get their 529 at the relay's next check: soon (a wait of
        # 0.2 s and checks every 0.1 s made each mode's run 118 s instead of 53 s).
        CCFLEET_JOURNAL_CHECK_S="0.05",
    )
    wait_until(lambda: http_ok(f"{stack.url}/health"), 30, "the front end")
    return stack


def test_the_document_declares_real_errors_streams_the_batch_body_and_the_key(
    make_stack: StackFactory,
) -> None:
    document = loopback.get(f"{front_end(make_stack, 'on').url}/openapi.json", timeout=30).json()
    operations = [op for path in document["paths"].values() for op in path.values()]
    assert all("422" not in op["responses"] for op in operations)
    assert "HTTPValidationError" not in document["components"]["schemas"]
    messages = document["paths"]["/v1/messages"]["post"]
    assert "text/event-stream" in messages["responses"]["200"]["content"]
    assert {"400", "401", "403", "413", "415", "429", "529"} <= set(messages["responses"])
    chat_400 = document["paths"]["/v1/chat/completions"]["post"]["responses"]["400"]
    assert chat_400["content"]["application/json"]["schema"]["$ref"].endswith("/OpenAIError")
    create_batch = document["paths"]["/v1/messages/batches"]["post"]
    assert create_batch["requestBody"]["required"] is True
    assert set(document["components"]["securitySchemes"]) == {"x-api-key", "bearer"}
    assert messages["security"] == [{"x-api-key": []}, {"bearer": []}]


def test_the_document_states_the_limits_a_valid_request_must_keep(
    make_stack: StackFactory,
) -> None:
    document = loopback.get(f"{front_end(make_stack, 'off').url}/openapi.json", timeout=30).json()
    schemas = document["components"]["schemas"]
    max_tokens = schemas["MessagesRequest"]["properties"]["max_tokens"]
    assert (
        max_tokens["maximum"] == Settings(redis_url="redis://unused").api.max_tokens_limit
    )  # CCFLEET_MAX_TOKENS_LIMIT
    top_k = schemas["MessagesRequest"]["properties"]["top_k"]["anyOf"][0]
    assert (top_k["minimum"], top_k["maximum"]) == (0, 2**64 - 1)  # JSON that Redis can store
    listing = document["paths"]["/v1/messages/batches"]["get"]["parameters"]
    after_id = next(p for p in listing if p["name"] == "after_id")["schema"]["anyOf"][0]
    assert re.fullmatch(after_id["pattern"], "msgbatch_" + "0" * 28)
    cancel = document["paths"]["/v1/messages/batches/{batch_id}/cancel"]["post"]
    assert cancel["requestBody"]["required"] is True  # a POST is application/json
    chat_message = schemas["ChatMessage"]
    tool_rule = next(
        r for r in chat_message["anyOf"] if r["properties"]["role"] == {"enum": ["tool"]}
    )
    assert tool_rule["required"] == ["content", "tool_call_id"]


@pytest.mark.timeout(RUN_TIMEOUT_S + 60)
@pytest.mark.parametrize("auth", ["off", "on"])
def test_no_input_reaches_a_500_and_every_answer_is_one_the_document_declares(
    make_stack: StackFactory, tmp_path: Path, auth: str
) -> None:
    stack = front_end(make_stack, auth)
    if auth == "on":
        key = asyncio.run(new_admin_key(stack))
        run = fuzz(stack, tmp_path, f"x-api-key: {key}", phases="examples,fuzzing")
    else:
        run = fuzz(stack, tmp_path)
    assert run.returncode == 0, run.stdout[-20_000:] + run.stderr[-4_000:]
    counts = re.search(r"(\d+) generated, (\d+) passed", run.stdout)
    assert counts is not None, run.stdout[-4_000:]
    generated, passed = int(counts[1]), int(counts[2])
    least = 300 if auth == "on" else 4_000  # it did send the requests
    assert generated == passed >= least, run.stdout[-4_000:]
