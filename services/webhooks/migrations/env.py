from common.migrations import run_env
from services.webhooks.models import Base

run_env(Base.metadata)
