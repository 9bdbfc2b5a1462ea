"""`vidrestore predict / interpolate / generate` with a tiny LGC-VD weight folder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from vidrestore.checkpoint import save_pretrained
from vidrestore.cli.main import cli
from vidrestore.io import read_video, write_video
from vidrestore.nets.lgcvd import LGCVDUNet


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = LGCVDUNet(channels=1, frames=8, image_size=16, dim=8, dim_mults=[1, 2], num_res_blocks=1, attn_resolutions=[8], head_channels=8)
    path = save_pretrained(net, tmp_path_factory.mktemp("w") / "tiny")
    yield path
    torch.set_num_threads(n)


def test_predict_interpolate_generate(tmp_path, weights):
    src = tmp_path / "in.npz"
    write_video(src, torch.rand(3, 4, 16, 16, generator=torch.Generator().manual_seed(0)))
    r = CliRunner().invoke(cli, ["predict", str(src), "-o", str(tmp_path / "p.npz"), "--frames", "7", "--steps", "2", "--weights", str(weights), "-q"])
    assert r.exit_code == 0, r.output
    y, _ = read_video(tmp_path / "p.npz")
    x, _ = read_video(src, frames=2)
    assert y.shape == (1, 3, 9, 16, 16)
    np.testing.assert_allclose(y[:, :, :2].numpy(), x.mean(1, keepdim=True).expand(-1, 3, -1, -1, -1).numpy(), atol=1e-6)

    r = CliRunner().invoke(cli, ["interpolate", str(src), "-o", str(tmp_path / "i.npz"), "--factor", "3", "--steps", "2", "--weights", str(weights), "-q"])
    assert r.exit_code == 0, r.output
    assert read_video(tmp_path / "i.npz")[0].shape == (1, 3, 10, 16, 16)

    for i, seed in enumerate((1, 1, 2)):
        r = CliRunner().invoke(cli, ["generate", "-o", str(tmp_path / f"g{i}.npz"), "--frames", "10", "--seed", str(seed), "--steps", "2", "--weights", str(weights), "-q"])
        assert r.exit_code == 0, r.output
    g0, g1, g2 = (read_video(tmp_path / f"g{i}.npz")[0] for i in range(3))
    assert g1.shape == (1, 3, 10, 16, 16) and torch.equal(g0, g1) and not torch.equal(g1, g2)


def test_user_errors_exit_2(tmp_path, weights):
    src = tmp_path / "in.npz"
    write_video(src, torch.rand(3, 4, 16, 16))
    r = CliRunner().invoke(cli, ["interpolate", str(src), "-o", str(tmp_path / "i.npz"), "--factor", "9", "--weights", str(weights)])
    assert r.exit_code == 2 and "--factor" in r.output and not (tmp_path / "i.npz").exists()
    r = CliRunner().invoke(cli, ["predict", str(src), "-o", str(tmp_path / "p.npz"), "--weights", str(tmp_path / "missing")])
    assert r.exit_code == 2 and "not found" in r.output


def test_bundled_model_refuses_out_of_domain_input(tmp_path):
    """The bundled model knows grey 32x32 moving digits: a colour clip or another frame size is
    refused with one line naming that domain (exit 2, no output), unless allowed explicitly."""
    from vidrestore.workflows.lgcvd import model_domain

    dom = model_domain()
    assert dom["channels"] == 1 and dom["size"] == (32, 32) and "digits" in dom["data"]
    g = torch.Generator().manual_seed(0)
    colour = tmp_path / "colour.npz"
    write_video(colour, torch.rand(3, 3, 32, 32, generator=g))
    big = tmp_path / "big.npz"
    write_video(big, torch.rand(1, 3, 48, 48, generator=g).expand(3, -1, -1, -1))
    for cmd in (["predict", "--frames", "2"], ["interpolate", "--factor", "2"]):
        for src in (colour, big):
            out = tmp_path / f"{cmd[0]}_{src.stem}.npz"
            r = CliRunner().invoke(cli, [cmd[0], str(src), "-o", str(out), *cmd[1:], "--steps", "1", "-q"])
            assert r.exit_code == 2, r.output
            line = r.output.strip()
            assert line.startswith("vidrestore: error: this LGC-VD model knows grey 32x32 frames of synthetic moving digits")
            assert ("colour frames" in line) == (src == colour) and ("48x48 frames" in line) == (src == big)
            assert "\n" not in line and not out.exists()
    # explicitly allowed: runs, and says why the output may not resemble the input
    out = tmp_path / "allowed.npz"
    r = CliRunner().invoke(cli, ["predict", str(colour), "-o", str(out), "--frames", "2", "--steps", "1", "--allow-out-of-domain", "-q"])
    assert r.exit_code == 0, r.output
    assert "vidrestore: warning: this LGC-VD model knows grey 32x32" in r.output and out.exists()
    # in-domain input (grey, 32x32) runs without a warning
    grey = tmp_path / "grey.npz"
    write_video(grey, torch.rand(1, 3, 32, 32, generator=g).expand(3, -1, -1, -1))
    r = CliRunner().invoke(cli, ["predict", str(grey), "-o", str(tmp_path / "g.npz"), "--frames", "2", "--steps", "1", "-q"])
    assert r.exit_code == 0 and "warning" not in r.output
