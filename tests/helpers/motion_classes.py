"""A small labelled video set whose classes are learnable: each class one kind of motion (pan, rotate, zoom),
its videos differing in texture and a little in speed, so that held-out videos move like the training ones."""

from __future__ import annotations

from pathlib import Path

from preprocess.synthetic import affine_step, encode_video, moving_frames, textured_image


def write_motion_classes(out: Path, per_class: int = 4, num_frames: int = 40, size: tuple[int, int] = (72, 96)
                         ) -> list[Path]:
    h, w = size
    c = (w / 2.0, h / 2.0)
    paths = []
    for vi in range(per_class):
        f = 1.0 + 0.1 * vi
        steps = {"pan": affine_step(dx=1.5 * f, dy=0.3), "rotate": affine_step(angle_deg=1.5 * f, center=c),
                 "zoom": affine_step(scale=1.0 + 0.015 * f, center=c)}
        for ci, (name, step) in enumerate(sorted(steps.items())):
            texture = textured_image(h * 2, w * 2, seed=100 + 10 * ci + vi)
            frames = moving_frames(texture, size, num_frames, step, offset=(h // 2, w // 2))
            paths.append(encode_video(out / name / f"{name}_{vi + 1:02d}.mp4", frames))
    return paths
