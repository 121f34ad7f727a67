"""The compiled parts of the package; everything else is declared in pyproject.toml.

``floodlight_trust.evidence.ima._bulkhash``: the IMA appraisal's bulk hashing (bulkhash.py says why),
C over libcrypto's SHA functions. It needs gcc, the Python headers and libssl-dev, which
``make setup`` installs when missing (scripts/ensure-cbuild.sh); bulkhash.py holds the same
functions in Python, used when the module is not built.

``floodlight_trust.evidence._derwalk``: the DER walks of a cold DCAP verification (x509_der.py says
why and holds their Python reference, used when the module is not built); plain C, no library.

``floodlight_trust.evidence._tcblevels``: a TCB info's levels read from its decoded JSON in one call
(collateral.py holds the reference, ``_tcb_levels_py``); plain C, no library.

``floodlight_trust.evidence._frozen``: frozen slots dataclass instances built in one call, for the
dozen a cold DCAP verification builds (frozen.py says why; its reference is the class itself).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "floodlight_trust.evidence.ima._bulkhash",
            sources=["floodlight_trust/evidence/ima/_bulkhash.c"],
            libraries=["crypto"],
            extra_compile_args=["-O2"],
        ),
        Extension(
            "floodlight_trust.evidence._derwalk",
            sources=["floodlight_trust/evidence/_derwalk.c"],
            extra_compile_args=["-O2"],
        ),
        Extension(
            "floodlight_trust.evidence._frozen",
            sources=["floodlight_trust/evidence/_frozen.c"],
            extra_compile_args=["-O2"],
        ),
        Extension(
            "floodlight_trust.evidence._tcblevels",
            sources=["floodlight_trust/evidence/_tcblevels.c"],
            extra_compile_args=["-O2"],
        ),
    ]
)
