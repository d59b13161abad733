"""Settings for the test suite: the production settings, preset for development, with a fast hasher.

The named users' passwords would otherwise cost PBKDF2's full work factor each (three quarters of the
suite's CPU). Processes the tests start inherit ``DJANGO_SETTINGS_MODULE``, so they read these too.
"""

import os

os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("SECRET_KEY", "test-suite-only-" + "k" * 48)

from juggernaut.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# The fakes of registries, webhooks and instances listen on 127.0.0.1; the guard's own tests turn this off.
HQ_OUTBOUND_ALLOW_PRIVATE = True
