"""Diagnosis: blurry-input vs PVDNet MSE on training-split synthetic clips.

Usage: PYTHONPATH=src python benchmarks/pvdnet_train_diag.py WEIGHT_FOLDER
PVDNet: Son et al., ACM TOG 40(5), 2021."""
import os, sys, numpy as np, torch
from vidrestore.data.blur_synth import BlurSynthConfig, SyntheticBlurClips
from vidrestore.workflows.deblur import load_pvdnet
from vidrestore.train.pvdnet import pvdnet_clip_steps, _training_flows
torch.set_num_threads(1); torch.manual_seed(0)
net = load_pvdnet(sys.argv[1]); net.eval()
for name, cfg in (("constant drift", BlurSynthConfig(stop_go_prob=0.0)), ("defaults (stop-and-go 0.5)", BlurSynthConfig())):
    ds = SyntheticBlurClips.from_folders([os.path.join(os.environ["DATA"], "photos"), os.path.join(os.environ["DATA"], "skimage")], split="train", size=96, num_frames=6, seed=99, config=cfg)
    mb, mm, mz = [], [], []
    for k in range(12):
        c = ds.clip(k); b, s = c["blurry"][None], c["sharp"][None]
        mb += [float(((2*b[:, :, t]-1) - (2*s[:, :, t]-1)).square().mean()) for t in range(1, 5)]
        with torch.no_grad():
            mm += pvdnet_clip_steps(net, b, s, None, flows=_training_flows("dis", b, None))
            mz += pvdnet_clip_steps(net, b, s, None, flows=_training_flows("zero", b, None))
    p = lambda m: 10*np.log10(4/np.mean(m))
    print(f"{name}: blurry MSE {np.mean(mb):.5f} ({p(mb):.2f} dB)  model DIS {np.mean(mm):.5f} ({p(mm):.2f} dB)  model zero {np.mean(mz):.5f} ({p(mz):.2f} dB); per-frame blurry PSNR median {np.median([10*np.log10(4/x) for x in mb]):.2f}, model median {np.median([10*np.log10(4/x) for x in mm]):.2f}")
