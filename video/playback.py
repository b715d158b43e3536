"""Side-by-side viewing copies of an encoded input: the original in a browser-playable form and
conventional codecs at about the .inr's size, each with its bytes, bpp and quality.

A job runner calls these after an encode; the searches here (CRF for video, quality for
images) are codec work, so they live with the codecs, not with the runner."""
from __future__ import annotations

from pathlib import Path

from video.media import ReadOptions

IMAGE_COMPANIONS = (("jpeg", "jpg"), ("webp", "webp"), ("avif", "avif"))  # (codec, file suffix)


def video_companions(src: Path, read: ReadOptions, target_bytes: int, out: Path) -> list[str]:
    """The original (near-lossless) and H.264 at about `target_bytes` (CRF searched to the
    closest byte count); returns the file names written under `out`."""
    from video.codecs import encode_baseline
    from video.fitting import write_json
    from video.media import read_media, write_video
    from video.options import PLAYBACK_CODEC, PLAYBACK_PRESET, VIEWING_CRF
    from video.quality import clip_quality

    frames, info = read_media(src, read)
    arr = frames.numpy()
    write_video(out / "original.mp4", frames, fps=info.fps, crf=VIEWING_CRF)
    lo, hi, best = 0, 51, None
    while lo <= hi:  # bytes fall as CRF rises: binary search for the closest size
        crf = (lo + hi) // 2
        res = encode_baseline(arr, PLAYBACK_CODEC, PLAYBACK_PRESET, crf, info.fps or 25.0)
        if best is None or abs(res.bytes - target_bytes) < abs(best.bytes - target_bytes):
            best = res
        if res.bytes > target_bytes:
            lo = crf + 1
        else:
            hi = crf - 1
    q = clip_quality(best.decoded, arr, best.decoded_y)
    write_video(out / "h264.mp4", best.decoded, fps=info.fps, crf=VIEWING_CRF)
    pixels = arr.shape[0] * arr.shape[1] * arr.shape[2]
    write_json(out / "h264.json", {"crf": best.crf, "bytes": best.bytes, "bpp": best.bytes * 8 / pixels, "psnr": q["psnr"], "msssim": q["msssim"],
                                   "note": f"h264.mp4 shows the decoded H.264 frames re-wrapped at CRF {VIEWING_CRF} for the browser; bytes are of the original stream"})
    return ["original.mp4", "h264.mp4", "h264.json"]


def image_companions(src: Path, read: ReadOptions, target_bytes: int, out: Path) -> list[str]:
    """The original as PNG and a JPEG, a WebP and an AVIF of about `target_bytes` (quality
    searched to the closest byte count that fits), each with its bytes, bpp and PSNR."""
    from video.fitting import load_signal, write_json
    from video.image_codecs import match_size
    from video.media import atomic_path, save_image, to_uint8
    from video.quality import clip_quality

    signal, _ = load_signal(src, read)
    orig = to_uint8(signal.data)
    save_image(out / "original.png", signal.data)
    names = ["original.png"]
    for codec, suffix in IMAGE_COMPANIONS:
        match = match_size(orig, codec, target_bytes)
        with atomic_path(out / f"{codec}.{suffix}") as tmp:
            tmp.write_bytes(match.data)
        qual = clip_quality(match.decoded[None], orig[None])
        write_json(out / f"{codec}.json", {"codec": codec, "quality": match.quality, "bytes": match.bytes, "bpp": match.bpp(),
                                           "fits": match.fits, "psnr": qual["psnr"], "msssim": qual["msssim"]})
        names += [f"{codec}.{suffix}", f"{codec}.json"]
    return names
