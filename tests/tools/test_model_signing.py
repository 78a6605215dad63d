"""ed25519 package signatures: `edgectl model keygen|sign|verify` on real model folders, and key rotation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from synthetic_models import constant_model, write_manifest

from agent.trust.keys import TrustList, generate_signing_key, public_key_b64
from agent.trust.packages import SignatureError, sign_package, verify_package
from tools.edgectl import main as edgectl
from tools.errors import MODEL, SIGNATURE, USAGE


@pytest.fixture
def model(tmp_path: Path) -> Path:
    folder = tmp_path / "street-issues"
    constant_model(folder / "model.onnx", np.zeros((1, 6, 4), np.float32))
    (folder / "MODEL_CARD.md").write_text("# card\n")
    write_manifest(folder, "model.onnx", id="street-issues", version="1.2.0", classes=["a", "b"])
    return folder


def keygen(path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert edgectl(["model", "keygen", str(path)]) == 0
    return capsys.readouterr().out.strip().splitlines()[-1]


def test_sign_then_verify_with_the_public_key(model: Path, tmp_path: Path, capsys) -> None:
    public = keygen(tmp_path / "ops.pem", capsys)
    assert (tmp_path / "ops.pem").stat().st_mode & 0o077 == 0, "the private key must be private"
    assert edgectl(["model", "sign", str(model), "--key", str(tmp_path / "ops.pem")]) == 0
    listing = json.loads((model / "signature.json").read_text())
    assert set(listing["files"]) == {"manifest.json", "model.onnx", "MODEL_CARD.md"}
    trust = tmp_path / "trusted"
    trust.write_text(f"# operators\n{public} ops-2026\n")
    capsys.readouterr()
    assert edgectl(["model", "verify", str(model), "--trust", str(trust)]) == 0
    out = capsys.readouterr().out
    assert "street-issues 1.2.0, 3 file(s) intact" in out and "ops-2026" in out


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda m: (m / "model.onnx").write_bytes((m / "model.onnx").read_bytes() + b"\0"), "model.onnx"),
        (lambda m: (m / "MODEL_CARD.md").write_text("# other card\n"), "MODEL_CARD.md: changed"),
        (lambda m: (m / "extra.onnx").write_bytes(b"x"), "extra.onnx: not covered"),
        (lambda m: (m / "MODEL_CARD.md").unlink(), "MODEL_CARD.md: missing"),
    ],
)
def test_any_change_after_signing_is_refused(
    model: Path, tmp_path: Path, capsys, tamper, reason: str
) -> None:
    public = keygen(tmp_path / "k.pem", capsys)
    assert edgectl(["model", "sign", str(model), "--key", str(tmp_path / "k.pem")]) == 0
    tamper(model)
    capsys.readouterr()
    code = edgectl(["model", "verify", str(model), "--trust-key", public])
    err = capsys.readouterr().err
    # A changed ONNX file no longer matches its manifest either; both are refusals.
    assert code in (SIGNATURE, MODEL) and reason in err
    assert "Traceback" not in err


def test_an_edited_listing_breaks_the_signature(model: Path, tmp_path: Path, capsys) -> None:
    public = keygen(tmp_path / "k.pem", capsys)
    assert edgectl(["model", "sign", str(model), "--key", str(tmp_path / "k.pem")]) == 0
    listing = json.loads((model / "signature.json").read_text())
    listing["version"] = "9.9.9"
    (model / "signature.json").write_text(json.dumps(listing))
    capsys.readouterr()
    assert edgectl(["model", "verify", str(model), "--trust-key", public]) == SIGNATURE
    assert "changed after signing" in capsys.readouterr().err


def test_key_rotation_through_the_trust_list(model: Path, tmp_path: Path) -> None:
    old = generate_signing_key(tmp_path / "old.pem")
    new = generate_signing_key(tmp_path / "new.pem")
    sign_package(model, old, "model", "street-issues", "1.2.0")
    both = TrustList.from_strings([public_key_b64(old.public_key()), public_key_b64(new.public_key())])
    only_new = TrustList.from_strings([public_key_b64(new.public_key())])
    assert verify_package(model, both).signer.key_id == both.keys[0].key_id
    with pytest.raises(SignatureError, match="not in the trust list"):
        verify_package(model, only_new)
    sign_package(model, new, "model", "street-issues", "1.2.0")  # re-signed: the old key can retire
    assert verify_package(model, only_new).signer.key_id == only_new.keys[0].key_id


def test_unsigned_package_and_missing_key_are_clear_errors(model: Path, tmp_path: Path, capsys) -> None:
    public = keygen(tmp_path / "k.pem", capsys)
    assert edgectl(["model", "verify", str(model), "--trust-key", public]) == SIGNATURE
    assert "not signed" in capsys.readouterr().err
    assert edgectl(["model", "sign", str(model), "--key", str(tmp_path / "missing.pem")]) == USAGE
    assert "cannot read the signing key" in capsys.readouterr().err
    assert edgectl(["model", "verify", str(model), "--trust-key", "not-base64!"]) == USAGE
    assert "not base64" in capsys.readouterr().err
    assert edgectl(["model", "keygen", str(tmp_path / "k.pem")]) == USAGE  # never overwrites a key


def test_sign_refuses_a_model_that_does_not_match_its_manifest(model: Path, tmp_path: Path, capsys) -> None:
    keygen(tmp_path / "k.pem", capsys)
    (model / "model.onnx").write_bytes(b"garbage")
    assert edgectl(["model", "sign", str(model), "--key", str(tmp_path / "k.pem")]) == MODEL
    assert "does not match the manifest" in capsys.readouterr().err
    assert not (model / "signature.json").exists()


def test_a_raw_base64_operator_key_signs_too(model: Path, tmp_path: Path, capsys) -> None:
    from agent.trust.keys import new_key

    private, public = new_key()  # the key form of signed MQTT commands
    (tmp_path / "operator.key").write_text(private + "\n")
    assert edgectl(["model", "sign", str(model), "--key", str(tmp_path / "operator.key")]) == 0
    assert edgectl(["model", "verify", str(model), "--trust-key", public]) == 0
    (tmp_path / "junk.key").write_text("not a key")
    assert edgectl(["model", "sign", str(model), "--key", str(tmp_path / "junk.key")]) == USAGE
    assert "neither a PEM private key" in capsys.readouterr().err
