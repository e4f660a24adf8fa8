"""The API keys of the e2e tier's keyed app (tests/e2e/conftest.py: keyed_app)."""

KEYS = ("key-one", "key-two")
KEY = KEYS[0]
BEARER = {"Authorization": f"Bearer {KEY}"}
