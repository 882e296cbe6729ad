"""Reading Nameko's global config with defaults, so every key has one place that names its fallback."""

from nameko import config


def setting(key, default=None):
    value = config.get(key, default)
    return default if value in (None, "") else value


def env_name():
    return setting("ENVIRONMENT", "dev")
