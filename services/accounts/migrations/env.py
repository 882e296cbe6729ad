from common.migrations import run_env
from services.accounts.models import Base

run_env(Base.metadata)
