"""`bench fetch-weights`, `bench doctor` and the report's download policy, against a loopback
HTTP server on 127.0.0.1 (nothing here reaches the internet).

The served files are made by the tests; the manifest entry under test is overridden with the
sha256 of the test's own bytes, computed here with hashlib (the independent reference).
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from fabricate import fabricate_run, fake_alexnet, go_offline, noisy, truth_image
from typer.testing import CliRunner

from bench import metrics, weights
from bench.cli import app
from bench.report import report_command

ALEX = "alexnet-owt-7be5be79.pth"


class Server:
    """A loopback HTTP server of in-memory files; '/cut/<name>' sends half of a file and hangs up
    after promising all of it; every requested path is logged."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the http.server API)
                server.requests.append(self.path)
                cut = self.path.startswith("/cut/")
                body = server.files.get(self.path.removeprefix("/cut"))
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if cut else body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server() -> Iterator[Server]:
    served = Server()
    yield served
    served.httpd.shutdown()
    served.httpd.server_close()


@pytest.fixture(autouse=True)
def offline_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No weight file anywhere; the weights mirror unset."""
    go_offline(monkeypatch, tmp_path)
    monkeypatch.delenv(weights.MIRROR_ENV, raising=False)


def hub(tmp_path: Path) -> Path:
    return tmp_path / "torch_home" / "hub" / "checkpoints"


def pin(monkeypatch: pytest.MonkeyPatch, key: str, body: bytes) -> str:
    """Override the manifest entry's checksum with the sha256 of `body`; that digest."""
    digest = hashlib.sha256(body).hexdigest()
    entry = dataclasses.replace(weights.MANIFEST[key], sha256=digest, sha256_prefix=None)
    monkeypatch.setitem(weights.MANIFEST, key, entry)
    return digest


def alexnet_bytes(tmp_path: Path) -> tuple[bytes, dict[str, torch.Tensor]]:
    """A random AlexNet state_dict file's bytes (plumbing only) and the state."""
    state = fake_alexnet(tmp_path / "made" / ALEX)
    return (tmp_path / "made" / ALEX).read_bytes(), state


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


def leftovers(folder: Path) -> list[str]:
    """Every file in `folder` (temp files included)."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_fetch_from_a_loopback_mirror_installs_a_file_lpips_then_loads(
    tmp_path, server, monkeypatch
):
    body, state = alexnet_bytes(tmp_path)
    digest = pin(monkeypatch, "lpips-alex", body)
    server.files[f"/{ALEX}"] = body
    result = cli("fetch-weights", "lpips-alex", "--from", server.url + "/")
    assert result.exit_code == 0, result.output
    assert (hub(tmp_path) / ALEX).read_bytes() == body
    assert leftovers(hub(tmp_path)) == [ALEX]
    assert server.requests == [f"/{ALEX}"]
    assert f"(sha256 {digest}; checked against the manifest's sha256)" in result.output.replace(
        "\n", ""
    )
    model = metrics.lpips_model("alex")  # the metric code finds and loads the fetched file
    assert torch.equal(model.net.net.slice1[0].weight, state["features.0.weight"])
    again = cli("fetch-weights", "lpips-alex", "--from", server.url)
    assert again.exit_code == 0 and "present lpips-alex" in again.output
    assert len(server.requests) == 1  # present: not downloaded again


def test_fetch_to_a_folder_and_from_a_mirror_folder(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    body = b"weights of a test file\n" * 1000
    (mirror / ALEX).write_bytes(body)
    pin(monkeypatch, "lpips-alex", body)
    result = cli("fetch-weights", "lpips-alex", "--from", str(mirror), "--to", str(tmp_path / "w"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "w" / ALEX).read_bytes() == body
    assert f"{weights.WEIGHTS_ENV}=" in result.output  # --to outside the searched folders
    monkeypatch.setenv(weights.WEIGHTS_ENV, str(tmp_path / "env"))
    assert cli("fetch-weights", "lpips-alex", "--from", str(mirror)).exit_code == 0
    assert (tmp_path / "env" / ALEX).read_bytes() == body
    assert weights.MANIFEST["lpips-alex"].find() == tmp_path / "env" / ALEX
    missing = cli("fetch-weights", "lpips-vgg", "--from", str(mirror))
    assert missing.exit_code == 1
    assert "vgg16-397923af.pth" in missing.output and "no such file" in missing.output


def test_checksum_mismatch_is_refused_and_nothing_is_left(tmp_path, server, monkeypatch):
    pin(monkeypatch, "lpips-alex", b"the expected bytes")
    server.files[f"/{ALEX}"] = b"other bytes"
    result = cli("fetch-weights", "lpips-alex", "--from", server.url)
    out = result.output.replace("\n", " ")
    assert result.exit_code == 1
    assert f"cannot fetch {ALEX}" in out and f"{server.url}/{ALEX}" in out
    assert hashlib.sha256(b"other bytes").hexdigest() in out and "refused" in out
    assert leftovers(hub(tmp_path)) == []


def test_the_real_manifest_prefix_is_checked(tmp_path, server):
    server.files[f"/{ALEX}"] = b"not torchvision's alexnet"
    result = cli("fetch-weights", "lpips-alex", "--from", server.url)
    assert result.exit_code == 1 and "expected one starting 7be5be79" in result.output
    assert leftovers(hub(tmp_path)) == []


def test_http_404_names_the_url_and_leaves_nothing(tmp_path, server):
    result = cli("fetch-weights", "lpips-vgg", "--from", server.url)
    out = result.output.replace("\n", " ")
    assert result.exit_code == 1
    assert "HTTP 404" in out and f"{server.url}/vgg16-397923af.pth" in out
    assert "exact file name" in out
    assert leftovers(hub(tmp_path)) == []


def test_connection_refused_says_no_network_and_how_to_mirror(tmp_path):
    with socket.socket() as probe:  # a port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = cli("fetch-weights", "lpips-alex", "--from", f"http://127.0.0.1:{port}")
    out = result.output.replace("\n", " ")
    assert result.exit_code == 1
    assert "no connection" in out and "--from F" in out and ALEX in out
    assert leftovers(hub(tmp_path)) == []


def test_interrupted_transfer_is_truncated_and_leaves_nothing(tmp_path, server, monkeypatch):
    body = bytes(range(256)) * 4000
    pin(monkeypatch, "lpips-alex", body)
    server.files[f"/{ALEX}"] = body
    result = cli("fetch-weights", "lpips-alex", "--from", server.url + "/cut")
    out = result.output.replace("\n", " ")
    assert result.exit_code == 1
    assert f"received {len(body) // 2:,} of {len(body):,} bytes" in out
    assert "run the same `bench fetch-weights` again" in out
    assert leftovers(hub(tmp_path)) == []


def test_every_key_is_tried_and_unknown_keys_are_named(tmp_path, server, monkeypatch):
    body = b"x" * 10
    pin(monkeypatch, "lpips-alex", body)
    server.files[f"/{ALEX}"] = body
    result = cli("fetch-weights", "--from", server.url)  # no key: the default report's files
    assert result.exit_code == 1
    assert sorted(server.requests) == sorted(
        f"/{weights.MANIFEST[k].filename}" for k in weights.DEFAULT_KEYS
    )
    assert leftovers(hub(tmp_path)) == [ALEX]
    bad = cli("fetch-weights", "lpips-squeeze")
    assert bad.exit_code == 2 and "valid: lpips-alex, lpips-vgg" in bad.output


def test_doctor_exit_code_and_json(tmp_path, monkeypatch):
    result = cli("doctor", "--json")
    assert result.exit_code == 1
    status = json.loads(result.stdout)
    assert status["ok"] is False
    assert set(status["missing_for_default_report"]) == {
        weights.MANIFEST[k].filename for k in weights.DEFAULT_KEYS
    }
    rows = {row["what"]: row for row in status["files"]}
    assert rows["lpips-alex"]["checked_by"] == "sha256 prefix 7be5be79"
    assert rows["cleanfid-inception"]["default_report"] is False
    folder = tmp_path / "w"
    folder.mkdir()
    for key in weights.DEFAULT_KEYS:
        (folder / weights.MANIFEST[key].filename).write_bytes(b"stand-in")
    monkeypatch.setenv(weights.WEIGHTS_ENV, str(folder))
    assert cli("doctor").exit_code == 0
    assert json.loads(cli("doctor", "--json").stdout)["ok"] is True


def test_the_shipped_linear_heads_match_their_pinned_sha256():
    for key in ("lpips-alex-linear", "lpips-vgg-linear"):
        entry = weights.MANIFEST[key]
        digest = hashlib.sha256(entry.require().read_bytes()).hexdigest()
        assert entry.checksum_problem(digest) is None


def _run(tmp_path: Path) -> Path:
    rows = [
        {"key": f"k{i}", "image_id": f"{i:04d}", "recon": noisy(truth_image(f"{i:04d}"), 20, i)}
        for i in range(2)
    ]
    return fabricate_run(tmp_path / "run", rows)


def test_report_downloads_missing_weights_unless_offline(tmp_path, server, monkeypatch, capsys):
    body, _ = alexnet_bytes(tmp_path)
    digest = pin(monkeypatch, "lpips-alex", body)
    server.files[f"/{ALEX}"] = body
    monkeypatch.setenv(weights.MIRROR_ENV, server.url)
    run = _run(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    report_command([run], out=tmp_path / "offline", fid=False)
    assert server.requests == [] and not (hub(tmp_path) / ALEX).exists()
    assert f"{ALEX} not downloaded (HF_HUB_OFFLINE=1)" in capsys.readouterr().err
    monkeypatch.delenv("HF_HUB_OFFLINE")
    report_command([run], out=tmp_path / "flag", fid=False, offline=True)
    assert server.requests == []
    assert f"{ALEX} not downloaded (--offline)" in capsys.readouterr().err
    out = report_command([run], out=tmp_path / "online", fid=False)
    assert sorted(server.requests) == [f"/{ALEX}", "/vgg16-397923af.pth"]
    assert (hub(tmp_path) / ALEX).read_bytes() == body
    err = capsys.readouterr().err.replace("\n", "")
    assert "vgg16-397923af.pth download failed" in err and "HTTP 404" in err
    assert f"weights used: {hub(tmp_path) / ALEX} (sha256 {digest}; manifest: sha256)" in err
    summary = (out / "summary.csv").read_text()
    assert "lpips_vgg: vgg16-397923af.pth" in summary and "lpips_alex:" not in summary


def test_report_without_network_tries_once_then_reports_missing(tmp_path, monkeypatch, capsys):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv(weights.MIRROR_ENV, f"http://127.0.0.1:{port}")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    out = report_command([_run(tmp_path)], out=tmp_path / "r")
    err = capsys.readouterr().err.replace("\n", "")
    assert f"{ALEX} download failed" in err and "no connection" in err
    assert "vgg16-397923af.pth not downloaded (no network)" in err
    assert "weights-inception-2015-12-05-6726825d.pth not downloaded (no network)" in err
    assert "`bench fetch-weights fid-inception` installs it" in (out / "summary.md").read_text()


def test_an_unwritable_destination_is_a_clear_error(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / ALEX).write_bytes(b"x")
    pin(monkeypatch, "lpips-alex", b"x")
    (tmp_path / "a-file").write_text("not a folder")
    to = tmp_path / "a-file" / "weights"
    result = cli("fetch-weights", "lpips-alex", "--from", str(mirror), "--to", str(to))
    out = result.output.replace("\n", " ")
    assert result.exit_code == 1 and "cannot write" in out and "--to DIR" in out
    assert result.exception is None or isinstance(result.exception, SystemExit)
