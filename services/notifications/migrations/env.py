from common.migrations import run_env
from services.notifications.models import Base

run_env(Base.metadata)
