"""Interest profiles: the decayed-sum math and its storage."""
