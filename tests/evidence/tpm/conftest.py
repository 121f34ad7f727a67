from tests.tpm_support import other_swtpm_state, running_swtpm, swtpm_state

__all__ = ["other_swtpm_state", "running_swtpm", "swtpm_state"]
