import os
os.environ.setdefault('HF_HUB_OFFLINE', '1')  # nothing downloads at test time
import pytest
from select_nb.models import tiny_lm, load_lm

@pytest.fixture(scope='session')
def tiny(): return tiny_lm()

@pytest.fixture(scope='session')
def smol(): return load_lm('smollm2-135m')
