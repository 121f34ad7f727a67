# The native module of collateral.py's TCB levels (_tcblevels.c); collateral._tcb_levels_py is its reference.
from typing import Any, TypeVar

_Level = TypeVar("_Level", bound=tuple[Any, ...])

def tcb_levels(levels: list[Any], v3: bool, level_type: type[_Level], /) -> tuple[_Level, ...]: ...
def qe_levels(levels: list[Any], level_type: type[_Level], /) -> tuple[_Level, ...]: ...
