from common.migrations import run_env
from services.products.models import TEXT_TABLE, Base

run_env(Base.metadata, unmanaged_prefixes=(TEXT_TABLE,))
