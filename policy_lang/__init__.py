"""The floodlight-trust policy language: which hosts and VNF enclaves may enroll.

It judges typed claims (``floodlight_trust.claims``) and knows nothing of evidence bytes.
Pipeline: :mod:`~policy_lang.parser` (text to AST) -> :mod:`~policy_lang.check` (imports, names,
types) -> :mod:`~policy_lang.compile` (lookup tables, :class:`Policy`) ->
:mod:`~policy_lang.evaluate` (:class:`Decision`). :mod:`~policy_lang.fmt` prints the canonical form,
:mod:`~policy_lang.testing` runs policy test files. The language takes text and reads no file: a
policy's imports and reference lists come through :class:`~policy_lang.check.PolicySources`, which
the shell provides (``floodlight_trust.policy_files``: ``load_policy(path)``).
"""

from __future__ import annotations

from floodlight_trust.reasons import Reason
from policy_lang.check import PolicyErrors
from policy_lang.compile import EnrollRule, Policy, compile_policy_text
from policy_lang.evaluate import Decision, HostMeasuredState

__all__ = [
    "Decision",
    "EnrollRule",
    "HostMeasuredState",
    "Policy",
    "PolicyErrors",
    "Reason",
    "compile_policy_text",
]
