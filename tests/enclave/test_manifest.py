"""`ftrust enclave check-manifest` on the shipped Gramine templates, and on broken manifests.

The templates are rendered as gramine-manifest renders them (Jinja2), with the variables computed
from this interpreter (`ftrust enclave manifest-vars`): the trusted library list comes from `ldd`
of python3 and of every extension module, never from a hand-written list.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from floodlight_trust.enclave.manifest import (
    InterpreterLayout,
    interpreter_layout,
    parse_manifest,
    render_template,
    template_variables,
)
from tests.support.cli import ftrust

ROOT = Path(__file__).resolve().parents[2]
AGENT = ROOT / "configs" / "gramine" / "ftrust-agent.manifest.template"
VNF = ROOT / "configs" / "gramine" / "ftrust-vnf.manifest.template"
POLICY = ROOT / "configs" / "policies" / "floodlight.policy"


@pytest.fixture(scope="module")
def layout() -> InterpreterLayout:
    return interpreter_layout()  # ldd over every extension module: once per module


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """What the templates name, present on this machine: configs and a VNF image with its pin."""
    d = tmp_path_factory.mktemp("gramine")
    (d / "agent.toml").write_text('[agent]\nbackend = "gramine"\n')
    image = d / "image"
    image.mkdir()
    (image / "enclave.toml").write_text('[enclave]\nvm_ca = "vm-ca.pem"\n')
    (image / "vm-ca.pem").write_text("pinned CA\n")
    (d / "vnf.toml").write_text('[enclave]\nvnf = "vnf-firewall-1"\nplatform = "gramine"\n')
    return {"agent_config": str(d / "agent.toml"), "image": str(image), "vnf_config": str(d / "vnf.toml")}


def defines(values: dict[str, str]) -> list[str]:
    return [f"-D{k}={v}" for k, v in values.items()]


def test_the_trusted_libraries_come_from_the_interpreter(layout: InterpreterLayout) -> None:
    names = {Path(lib).name.split(".so")[0] for lib in layout.libraries}
    # _ssl, zlib and pyexpat load these: the libraries the first template forgot.
    assert {"libssl", "libcrypto", "libz", "libexpat"} <= names, sorted(names)
    assert not any(Path(lib).name.startswith(("libc.so", "ld-linux")) for lib in layout.libraries)  # Gramine's glibc


def test_manifest_vars_prints_what_gramine_manifest_needs() -> None:
    r = ftrust("enclave", "manifest-vars", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert {"entrypoint", "stdlib", "site_packages", "trusted_libs", "python_prefix"} <= set(doc)
    assert "libssl.so" in doc["trusted_libs"]


@pytest.mark.parametrize(
    ("template", "enclave"), [(AGENT, "host_integrity"), (VNF, "firewall_vnf")], ids=["agent", "vnf"]
)
def test_the_shipped_templates_pass(template: Path, enclave: str, deployment: dict[str, str]) -> None:
    r = ftrust(
        "enclave", "check-manifest", str(template), "--policy", str(POLICY), "--enclave", enclave,
        *defines(deployment), "--json",
    )  # fmt: skip
    doc = json.loads(r.stdout)
    assert r.returncode == 0 and doc["ok"], doc["reasons"]
    # Only Gramine's own files cannot be checked on a machine without Gramine, and that is said.
    for reason in doc["reasons"]:
        assert reason["level"] == "note" and "Gramine's own file" in reason["message"], reason


def rendered(
    layout: InterpreterLayout, template: Path, deployment: dict[str, str], tmp: Path, edit: tuple[str, str]
) -> Path:
    variables = template_variables(layout) | deployment
    text = render_template(template.read_text(), variables)
    text, n = re.subn(edit[0], edit[1], text, flags=re.M)
    assert n == 1, edit
    out = tmp / (template.name.removesuffix(".template"))
    out.write_text(text)
    return out


def test_a_missing_trusted_library_is_caught(
    layout: InterpreterLayout, deployment: dict[str, str], tmp_path: Path
) -> None:
    manifest = rendered(layout, VNF, deployment, tmp_path, (r'^  "file:[^"]*/libssl\.so[^"]*",\n', ""))
    r = ftrust("enclave", "check-manifest", str(manifest), *defines(deployment))
    assert r.returncode == 1, r.stdout + r.stderr
    assert re.search(r"manifest\.libraries: \S*/libssl\.so\S* is loaded by the interpreter or an extension", r.stdout)
    assert r.stdout.count("manifest.libraries") == 1


def test_a_wrong_isvprodid_is_caught_against_the_policy(
    layout: InterpreterLayout, deployment: dict[str, str], tmp_path: Path
) -> None:
    manifest = rendered(layout, AGENT, deployment, tmp_path, (r"^sgx\.isvprodid = 0 ", "sgx.isvprodid = 1 "))
    r = ftrust(
        "enclave", "check-manifest", str(manifest), "--policy", str(POLICY), "--enclave", "host_integrity",
        *defines(deployment),
    )  # fmt: skip
    assert r.returncode == 1, r.stdout + r.stderr
    assert "manifest.policy: sgx.isvprodid = 1" in r.stdout
    assert "enclave policy host_integrity" in r.stdout and "isv_prod_id is 1, expected 0" in r.stdout


def test_debug_on_is_caught(layout: InterpreterLayout, deployment: dict[str, str], tmp_path: Path) -> None:
    manifest = rendered(layout, VNF, deployment, tmp_path, (r"^sgx\.debug = false ", "sgx.debug = true "))
    r = ftrust(
        "enclave", "check-manifest", str(manifest), "--policy", str(POLICY), "--enclave", "firewall_vnf",
        *defines(deployment),
    )  # fmt: skip
    assert r.returncode == 1, r.stdout + r.stderr
    assert "manifest.debug: sgx.debug is True" in r.stdout
    assert "does not allow debug enclaves" in r.stdout


def test_a_vnf_manifest_without_sealed_storage_or_pin_is_caught(
    layout: InterpreterLayout, deployment: dict[str, str], tmp_path: Path
) -> None:
    manifest = rendered(layout, VNF, deployment, tmp_path, (r'key_name = "_sgx_mrenclave"', 'key_name = "my_key"'))
    text = manifest.read_text().replace(f'  "file:{deployment["image"]}/",\n', "")
    manifest.write_text(text)
    r = ftrust("enclave", "check-manifest", str(manifest), *defines(deployment))
    assert r.returncode == 1
    assert "manifest.sealing: encrypted mount '/sealed' has key_name 'my_key'" in r.stdout
    assert "manifest.pin: the pinned VM CA" in r.stdout


def test_duplicate_and_hidden_mounts_are_caught(layout: InterpreterLayout) -> None:
    from floodlight_trust.enclave.manifest import check_manifest

    doc = {
        "sgx": {"remote_attestation": "dcap", "debug": False},
        "fs": {
            "mounts": [
                {"path": "/usr", "uri": "file:/usr"},
                {"path": "/opt/vnf", "uri": "file:/opt/vnf"},
                {"path": "/usr", "uri": "file:/usr"},
                {"type": "tmpfs", "path": "/opt"},
            ]
        },
    }
    messages = [
        r.message
        for r in check_manifest(doc, layout=layout, exists=lambda p: True, gramine_installed=False)
        if r.rule == "manifest.mounts"
    ]
    assert messages == [
        "the mount at /opt/vnf is hidden by the later mount at /opt",
        "two mounts at /usr: Gramine refuses the manifest",
    ]


@pytest.mark.parametrize("template", [AGENT, VNF], ids=["agent", "vnf"])
def test_templates_mount_tmpfs_before_anything_that_may_live_under_tmp(
    template: Path, layout: InterpreterLayout, deployment: dict[str, str]
) -> None:
    """A checkout (and its venv) under /tmp, as CI's clean clones may be: the enclave's tmpfs /tmp
    must not hide the interpreter, the venv, the image or the config (it once hid the VNF's venv)."""
    from floodlight_trust.enclave.manifest import check_manifest

    under_tmp = {"venv": "/tmp/ci/p/.venv", "python_prefix": "/tmp/py", "image": "/tmp/ci/image"}
    variables = template_variables(layout) | deployment | under_tmp
    doc = parse_manifest(render_template(template.read_text(), variables), source=str(template))
    messages = [
        r.message
        for r in check_manifest(doc, layout=layout, exists=lambda p: True, gramine_installed=False)
        if r.rule == "manifest.mounts"
    ]
    assert messages == []
