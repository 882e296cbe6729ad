from tests.payment_provider.provider import payment_provider  # noqa: F401  (the fixture)
