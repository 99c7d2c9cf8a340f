"""The collector contract test kit: checks any collector must pass, reusable by every collector's tests."""
