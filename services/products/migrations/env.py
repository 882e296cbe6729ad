from common.migrations import run_env
from services.products.models import Base

run_env(Base.metadata)
