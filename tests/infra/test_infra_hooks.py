"""Offline checks of azure.yaml and the azd postdeploy hooks that wire Event Grid after deploy.

The POSIX hook is run for real against a fake `az` on PATH (a shell script that answers the calls
the hook makes and records them), so its waiting, key handling and idempotent re-deployment are
exercised without Azure. The PowerShell hook cannot run here (no pwsh): it is checked for parity
with the POSIX one (same template, same deployment name, same environment values, same parameters).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.bicep import (
    FUNCTION_NAME,
    MAIN,
    ROOT,
    SUBSCRIPTION_TEMPLATE,
    parsed,
)

AZURE_YAML = ROOT / "azure.yaml"
HOOK_SH = ROOT / "scripts" / "postdeploy.sh"
HOOK_PS1 = ROOT / "scripts" / "postdeploy.ps1"
KEY = "FaKe_SyStEm-KeY0123456789abcdefABCDEF=="

# What azd puts in the hook's environment (outputs of infra/main.bicep), as in a real env.
AZD_ENV = {
    "AZURE_SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000001",
    "AZURE_RESOURCE_GROUP": "rg-test",
    "AZURE_FUNCTION_APP_NAME": "func-abc123",
    "EVENTGRID_SYSTEM_TOPIC_NAME": "evgst-stdataabc123",
    "AZURE_STORAGE_ACCOUNT_NAME": "stdataabc123",
    "INPUT_CONTAINER": "batch-input",
    "EVENTGRID_DEADLETTER_CONTAINER": "eventgrid-deadletter",
}

FAKE_AZ = r"""#!/bin/sh
# Fake Azure CLI: records each call (one line, arguments joined by a tab) and answers it.
state="$FAKE_AZ_STATE"
printf '%s' "$1" >>"$state/calls"
shift_args="$*"
i=0
for a in "$@"; do i=$((i + 1)); [ "$i" -gt 1 ] && printf '\t%s' "$a" >>"$state/calls"; done
printf '\n' >>"$state/calls"
bump() {
  n=$(cat "$state/$1" 2>/dev/null || echo 0)
  n=$((n + 1))
  echo "$n" >"$state/$1"
  echo "$n"
}
case "$shift_args" in
  "account show"*) exit "${FAKE_LOGGED_OUT:-0}" ;;
  "rest --method get --url "*"/functions?"*)
    n=$(bump functions)
    if [ "$n" -gt "${FAKE_INDEXED_AFTER:-0}" ]; then
      printf '%s\n' "$AZURE_FUNCTION_APP_NAME/reconcile" "$AZURE_FUNCTION_APP_NAME/$FAKE_FUNCTION"
    fi
    exit 0 ;;
  "rest --method post --url "*"/host/default/listkeys?"*)
    n=$(bump keys)
    if [ "$n" -gt "${FAKE_KEY_AFTER:-0}" ]; then printf '%s\n' "$FAKE_KEY"; else echo None; fi
    exit 0 ;;
  "deployment group create"*)
    n=$(bump deployments)
    for a in "$@"; do
      case "$a" in
        @*) cp "${a#@}" "$state/params.$n.json"; echo "${a#@}" >"$state/params_path" ;;
      esac
    done
    if [ "$n" -le "${FAKE_DEPLOY_FAILS:-0}" ]; then echo "webhook validation failed" >&2; exit 1; fi
    exit 0 ;;
esac
echo "fake az: unexpected call: $shift_args" >&2
exit 2
"""


def parse_simple_yaml(text: str) -> dict[str, Any]:
    """Nested `key: value` mappings by indentation: the subset azure.yaml uses (no PyYAML here)."""
    root: dict[str, Any] = {}
    stack: list[tuple[int, dict[str, Any]]] = [(-1, root)]
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        key, _, val = line.strip().partition(":")
        assert _, f"unsupported YAML line: {raw!r}"
        while stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1]
        if val.strip():
            v = val.strip()
            parent[key] = {"true": True, "false": False}.get(v, v)
        else:
            parent[key] = {}
            stack.append((indent, parent[key]))
    return root


def azure_yaml() -> dict[str, Any]:
    return parse_simple_yaml(AZURE_YAML.read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------
# azure.yaml
# ---------------------------------------------------------------------------------------------


def test_azure_yaml_declares_the_function_service() -> None:
    doc = azure_yaml()
    assert doc["name"]
    assert doc["services"] == {"api": {"project": ".", "language": "python", "host": "function"}}
    assert doc["infra"] == {"provider": "bicep", "path": "infra", "module": "main"}
    assert (ROOT / doc["infra"]["path"] / f"{doc['infra']['module']}.bicep").is_file()
    # main.bicep tags the app with azd-service-name = the service name, SERVICE_API_NAME output.
    assert "SERVICE_API_NAME" in parsed(MAIN)["outputs"]
    assert (ROOT / "requirements.txt").is_file()
    assert (ROOT / "function_app.py").is_file() or pytest.skip("TODO(lead): function_app.py")


def test_azure_yaml_declares_posix_and_windows_postdeploy_hooks() -> None:
    hook = azure_yaml()["hooks"]["postdeploy"]
    assert hook["posix"]["shell"] == "sh"
    assert hook["windows"]["shell"] == "pwsh"
    assert (ROOT / hook["posix"]["run"]) == HOOK_SH
    assert (ROOT / hook["windows"]["run"]) == HOOK_PS1
    for side in ("posix", "windows"):
        assert hook[side]["continueOnError"] is False, "a failed wiring must fail `azd up`"
        assert hook[side]["interactive"] is False
    assert os.access(HOOK_SH, os.X_OK), "scripts/postdeploy.sh must be executable"


# ---------------------------------------------------------------------------------------------
# The POSIX hook, run against a fake az
# ---------------------------------------------------------------------------------------------


def test_posix_hook_is_valid_sh() -> None:
    for shell in ("sh", "dash", "bash"):
        if shutil.which(shell):
            subprocess.run([shell, "-n", str(HOOK_SH)], check=True)


def run_hook(tmp_path: Path, **overrides: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    if shutil.which("sh") is None:
        pytest.skip("no POSIX sh on this machine (the Windows hook is checked for parity only)")
    bindir = tmp_path / "bin"
    state = tmp_path / "state"
    bindir.mkdir(exist_ok=True)
    state.mkdir(exist_ok=True)
    fake = bindir / "az"
    fake.write_text(FAKE_AZ, encoding="utf-8")
    fake.chmod(0o755)
    env = {
        "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "TMPDIR": str(tmp_path),
        "FAKE_AZ_STATE": str(state),
        "FAKE_KEY": KEY,
        "FAKE_FUNCTION": FUNCTION_NAME,
        "POSTDEPLOY_WAIT_SECONDS": "0",
        **AZD_ENV,
        **overrides,
    }
    env = {k: v for k, v in env.items() if v != "<unset>"}
    proc = subprocess.run(
        ["sh", str(HOOK_SH)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    return proc, state


def calls(state: Path) -> list[list[str]]:
    path = state / "calls"
    if not path.exists():
        return []
    return [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]


def deployments(state: Path) -> list[list[str]]:
    return [c for c in calls(state) if c[:3] == ["deployment", "group", "create"]]


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_hook_waits_for_the_function_and_key_then_deploys_the_subscription(tmp_path: Path) -> None:
    proc, state = run_hook(tmp_path, FAKE_INDEXED_AFTER="2", FAKE_KEY_AFTER="1")
    assert proc.returncode == 0, proc.stderr
    assert "waiting for function 'on_blob_created' to be indexed (1/" in proc.stdout
    assert "waiting for the eventgrid_extension system key (1/" in proc.stdout
    assert (state / "functions").read_text().strip() == "3"
    (deploy,) = deployments(state)
    assert option(deploy, "--subscription") == AZD_ENV["AZURE_SUBSCRIPTION_ID"]
    assert option(deploy, "--resource-group") == AZD_ENV["AZURE_RESOURCE_GROUP"]
    assert option(deploy, "--name") == "blob-created-subscription"
    assert Path(option(deploy, "--template-file")) == SUBSCRIPTION_TEMPLATE
    assigned = dict(a.split("=", 1) for a in deploy if re.fullmatch(r"\w+=.*", a))
    assert assigned == {
        "functionAppName": AZD_ENV["AZURE_FUNCTION_APP_NAME"],
        "functionName": FUNCTION_NAME,
        "systemTopicName": AZD_ENV["EVENTGRID_SYSTEM_TOPIC_NAME"],
        "inputContainerName": AZD_ENV["INPUT_CONTAINER"],
        "deadLetterStorageAccountName": AZD_ENV["AZURE_STORAGE_ACCOUNT_NAME"],
        "deadLetterContainerName": AZD_ENV["EVENTGRID_DEADLETTER_CONTAINER"],
    }
    # Every name the hook passes is a parameter of the template.
    assert set(assigned) | {"eventGridExtensionKey"} <= set(
        parsed(SUBSCRIPTION_TEMPLATE)["parameters"]
    )
    # The management calls target the app's resource id.
    site = (
        f"/subscriptions/{AZD_ENV['AZURE_SUBSCRIPTION_ID']}/resourceGroups/"
        f"{AZD_ENV['AZURE_RESOURCE_GROUP']}/providers/Microsoft.Web/sites/"
        f"{AZD_ENV['AZURE_FUNCTION_APP_NAME']}"
    )
    rest = [c for c in calls(state) if c[0] == "rest"]
    assert all(option(c, "--url").startswith(site + "/") for c in rest)


def test_hook_passes_the_key_only_through_a_private_parameters_file(tmp_path: Path) -> None:
    proc, state = run_hook(tmp_path)
    assert proc.returncode == 0, proc.stderr
    recorded = (state / "calls").read_text(encoding="utf-8")
    assert KEY not in recorded, "the key must not be on any command line"
    assert KEY not in proc.stdout + proc.stderr, "the key must not be printed"
    params = json.loads((state / "params.1.json").read_text(encoding="utf-8"))
    assert params["parameters"] == {"eventGridExtensionKey": {"value": KEY}}
    path = Path((state / "params_path").read_text(encoding="utf-8").strip())
    assert not path.exists(), "the parameters file must be removed"
    assert not path.parent.exists(), "the private temp directory must be removed"


def test_hook_is_idempotent(tmp_path: Path) -> None:
    first, state = run_hook(tmp_path)
    assert first.returncode == 0, first.stderr
    second, _ = run_hook(tmp_path)
    assert second.returncode == 0, second.stderr

    def normalized(args: list[str]) -> list[str]:
        return ["@<private parameters file>" if a.startswith("@") else a for a in args]

    one, two = deployments(state)
    assert normalized(one) == normalized(two), "a re-run deploys the same template and arguments"
    assert (state / "params.1.json").read_text() == (state / "params.2.json").read_text()


def test_hook_retries_a_failed_subscription_deployment(tmp_path: Path) -> None:
    proc, state = run_hook(tmp_path, FAKE_DEPLOY_FAILS="2")
    assert proc.returncode == 0, proc.stderr
    assert len(deployments(state)) == 3


def test_hook_fails_after_three_failed_deployments(tmp_path: Path) -> None:
    proc, state = run_hook(tmp_path, FAKE_DEPLOY_FAILS="3")
    assert proc.returncode != 0
    assert "could not create the Event Grid subscription" in proc.stderr
    assert len(deployments(state)) == 3


def test_hook_fails_clearly_when_the_function_never_appears(tmp_path: Path) -> None:
    proc, state = run_hook(tmp_path, FAKE_FUNCTION="something_else", POSTDEPLOY_WAIT_ATTEMPTS="3")
    assert proc.returncode != 0
    assert "function 'on_blob_created' is not listed" in proc.stderr
    assert (state / "functions").read_text().strip() == "3"
    assert not deployments(state)


def test_hook_fails_clearly_when_the_key_never_appears(tmp_path: Path) -> None:
    proc, state = run_hook(tmp_path, FAKE_KEY_AFTER="99", POSTDEPLOY_WAIT_ATTEMPTS="2")
    assert proc.returncode != 0
    assert "eventgrid_extension system key" in proc.stderr
    assert not deployments(state)


def test_hook_rejects_a_malformed_key(tmp_path: Path) -> None:
    proc, state = run_hook(tmp_path, FAKE_KEY='abc"def')
    assert proc.returncode != 0
    assert "unexpected characters" in proc.stderr
    assert not deployments(state)


@pytest.mark.parametrize("missing", sorted(AZD_ENV))
def test_hook_names_a_missing_environment_value(tmp_path: Path, missing: str) -> None:
    proc, state = run_hook(tmp_path, **{missing: "<unset>"})
    assert proc.returncode != 0
    assert f"{missing} is not set" in proc.stderr
    assert not calls(state), "nothing is called before the environment is complete"


def test_hook_asks_for_az_login(tmp_path: Path) -> None:
    proc, state = run_hook(tmp_path, FAKE_LOGGED_OUT="1")
    assert proc.returncode != 0
    assert "az login" in proc.stderr
    assert not deployments(state)


# ---------------------------------------------------------------------------------------------
# Both hooks agree with each other and with main.bicep
# ---------------------------------------------------------------------------------------------


def env_names_sh(text: str) -> set[str]:
    block = re.search(r"for name in (.*?); do", text, re.S)
    assert block
    return set(re.findall(r"[A-Z][A-Z0-9_]+", block.group(1)))


def env_names_ps1(text: str) -> set[str]:
    block = re.search(r"\$required = @\((.*?)\)", text, re.S)
    assert block
    return set(re.findall(r"'([A-Z][A-Z0-9_]+)'", block.group(1)))


def test_hooks_require_the_same_environment_values_which_main_outputs() -> None:
    sh_names = env_names_sh(HOOK_SH.read_text(encoding="utf-8"))
    ps_names = env_names_ps1(HOOK_PS1.read_text(encoding="utf-8"))
    assert sh_names == ps_names == set(AZD_ENV)
    outputs = set(parsed(MAIN)["outputs"])
    assert sh_names <= outputs, sh_names - outputs
    assert "SERVICE_API_URI" in outputs  # used to wake the host


def test_powershell_hook_matches_the_posix_hook() -> None:
    sh = HOOK_SH.read_text(encoding="utf-8")
    ps = HOOK_PS1.read_text(encoding="utf-8")
    for text in (sh, ps):
        assert "infra/eventgrid-subscription.bicep" in text
        assert "blob-created-subscription" in text
        assert "on_blob_created" in text
        assert "/functions?api-version=" in text
        assert "/host/default/listkeys?api-version=" in text
        assert "systemKeys.eventgrid_extension" in text
        assert "eventGridExtensionKey" in text
        assert "POSTDEPLOY_WAIT_SECONDS" in text
    sh_params = set(re.findall(r"^\s+([a-z]\w*)=\"\$", sh, re.M))
    ps_params = set(re.findall(r"^\s+\"(\w+)=\$", ps, re.M))
    assert sh_params == ps_params
    assert len(sh_params) == 6
    assert re.search(r"api-version=\$API_VERSION", sh)
    sh_version = re.search(r'API_VERSION="(\d{4}-\d{2}-\d{2})"', sh)
    ps_version = re.search(r"\$ApiVersion = '(\d{4}-\d{2}-\d{2})'", ps)
    assert sh_version
    assert ps_version
    assert sh_version.group(1) == ps_version.group(1)
    # The key never goes on a command line in either hook.
    assert "eventGridExtensionKey=" not in sh
    assert "eventGridExtensionKey=" not in ps
