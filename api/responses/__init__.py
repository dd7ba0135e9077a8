"""OpenAI's Responses API (`/v1/responses`) over the same jobs as /v1/messages.

request.py: the request body; translation.py: it as a Messages request (and the names of the
client's tools both ways); events.py: the job's Anthropic events as Responses events and the
response object; store.py: stored responses in Redis; background.py: responses queued with no
client, polled and cancelled. The routes are api/routes/responses.py.
"""
