"""Finding the face a hole belongs to in real photos, aligning it, and saying so when there is none.

Uses the shipped face model (its face framing and framer), dlib's detector and landmarks, and two
real photos: scikit-image's astronaut (tests/data, public domain) and held-out CelebA faces placed
into a larger photo, turned and enlarged.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from inpaint import faces
from inpaint.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint, save_checkpoint
from inpaint.cli import main
from inpaint.engine import NO_FACE_NOTE, FillRequest, choose_view, face_template, fill_images
from inpaint.errors import UserError
from inpaint.framing import Framing, apply
from inpaint.locate import (
    OUTLINE_AGREEMENT,
    FaceTemplate,
    find_face_framing,
    outline_agreement,
    parse_face_box,
    photo_framing,
)
from inpaint.search import SearchSettings

pytestmark = pytest.mark.skipif(not faces.available(), reason="needs dlib-bin and face_recognition_models")

DATA = Path(__file__).resolve().parent / "data"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "faces"
FAST = SearchSettings(iterations=5, restarts=2, top_k=2)
ASTRONAUT_EYE_CENTRES = np.array([[203.2, 101.4], [246.8, 103.7]])  # dlib's landmarks on the intact photo
ASTRONAUT_EYES = (slice(92, 124), slice(172, 278))  # a bar over both eyes
# A box over her eyes, nose and mouth (dlib's landmarks 36–67 on the intact photo span x 195–255,
# y 98–156); her hair, ears, cheeks' edges and chin stay.
ASTRONAUT_MIDDLE = (slice(88, 164), slice(186, 264))


@pytest.fixture(scope="module")
def default():
    return load_checkpoint(DEFAULT_CHECKPOINT)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.asarray(Image.open(DATA / "astronaut.jpg").convert("RGB"))


def eyes_hole(shape) -> np.ndarray:
    hole = np.zeros(shape[:2], bool)
    hole[ASTRONAUT_EYES] = True
    return hole


def placed_face(angle: float, scale: float, name: str = "142124.jpg", canvas=(700, 560)):
    """A held-out face (89×109) turned and enlarged into a larger grey photo; returns the photo,
    a hole over its eyes, and where its eyes are in the photo."""
    face = np.asarray(Image.open(EXAMPLES / name).convert("RGB")).astype(np.float32)
    centre = (canvas[0] * 0.55, canvas[1] * 0.45)
    matrix = cv2.getRotationMatrix2D((44.5, 54.5), angle, scale)
    matrix[:, 2] += np.array(centre) - np.array([44.5, 54.5])
    photo = np.full((canvas[1], canvas[0], 3), 90, np.float32)
    alpha = cv2.warpAffine(np.ones(face.shape[:2], np.float32), matrix, canvas)[..., None]
    photo = photo * (1 - alpha) + cv2.warpAffine(face, matrix, canvas, flags=cv2.INTER_CUBIC) * alpha
    eyes = apply(matrix, [[34.7, 56.5], [54.0, 56.5]])
    corners = apply(matrix, [[20, 46], [69, 46], [69, 67], [20, 67]])
    hole = np.zeros(photo.shape[:2], np.uint8)
    cv2.fillPoly(hole, [np.round(corners).astype(np.int32)], 1)
    return np.clip(photo, 0, 255).astype(np.uint8), hole.astype(bool), eyes


def eye_error(view: Framing, eyes: np.ndarray, template: FaceTemplate) -> float:
    """How far the framing puts the photo's eyes from the template's eyes, in eye distances."""
    points = template.at_size(view.size).points
    wanted = np.stack([points[36:42].mean(0), points[42:48].mean(0)])
    found = apply(view.matrix, eyes)
    return float(np.linalg.norm(found - wanted, axis=1).max() / np.linalg.norm(wanted[1] - wanted[0]))


def test_the_default_model_carries_its_face_framing_and_a_framer(default):
    template = face_template(default)
    assert template is not None and template.points.shape == (68, 2) and template.images >= 500
    assert default.framer is not None
    eyes = template.points[36:48, 1].mean()
    assert 0.35 * 64 < eyes < 0.6 * 64  # CelebA's eyes sit a little above the middle


def test_a_square_photos_face_is_found_for_projection(default, astronaut):
    view = photo_framing(astronaut, face_template(default), 64, use_faces=True, framer=default.framer)
    assert view.how == "face" and 140 < view.side() < 260
    assert eye_error(view, ASTRONAUT_EYE_CENTRES, face_template(default)) < 0.3


@pytest.mark.parametrize("pixels", ["intact", "blank", "noise"])
def test_the_face_is_found_when_the_hole_covers_the_eyes(default, astronaut, pixels):
    hole = eyes_hole(astronaut.shape)
    photo = astronaut.copy()
    if pixels == "blank":
        photo[hole] = 0
    elif pixels == "noise":
        photo[hole] = np.random.default_rng(0).integers(0, 256, (hole.sum(), 3))
    view = find_face_framing(photo, hole, face_template(default), 64, default.framer)
    assert view is not None and view.how == "face"
    reference = photo_framing(astronaut, face_template(default), 64, True, default.framer)  # the intact photo, no hole
    assert np.linalg.norm(view.corners() - reference.corners(), axis=1).max() < 0.15 * reference.side()


@pytest.mark.parametrize("angle, scale", [(-18.0, 2.0), (12.0, 3.5), (0.0, 1.3)])
def test_a_turned_enlarged_face_with_blanked_eyes_is_aligned(default, angle, scale):
    photo, hole, eyes = placed_face(angle, scale)
    photo[hole] = 0
    view = find_face_framing(photo, hole, face_template(default), 64, default.framer)
    assert view is not None
    assert eye_error(view, eyes, face_template(default)) < 0.3
    assert abs(view.angle - angle) < 8  # the square is turned with the face


def test_with_two_faces_the_one_the_hole_covers_is_framed(default):
    left, _, _ = placed_face(0.0, 2.0, "142124.jpg", canvas=(400, 400))
    right, hole, eyes = placed_face(0.0, 2.0, "150632.jpg", canvas=(400, 400))
    photo = np.hstack([left, right])
    hole = np.hstack([np.zeros_like(hole), hole])
    view = find_face_framing(photo, hole, face_template(default), 64, default.framer)
    assert view is not None and view.corners().mean(0)[0] > 400
    assert eye_error(view, eyes + [400, 0], face_template(default)) < 0.3


def test_a_hole_no_face_owns_gets_a_classical_fill_and_says_so(default, astronaut, tmp_path, capsys):
    hole = np.zeros(astronaut.shape[:2], bool)
    hole[60:110, 20:70] = True  # on the flag
    [result] = fill_images(default, [(Image.fromarray(astronaut), hole)], FillRequest(FAST))
    assert result.framing == "classical" and result.view is None and result.notes == [NO_FACE_NOTE]
    after = np.asarray(result.image)
    assert np.array_equal(after[~hole], astronaut[~hole]) and not np.array_equal(after[hole], astronaut[hole])
    source, mask = tmp_path / "astronaut.png", tmp_path / "flag.png"
    Image.fromarray(astronaut).save(source)
    Image.fromarray(hole.astype(np.uint8) * 255).save(mask)
    assert (
        main(["fill", str(source), "--mask", str(mask), "--out", str(tmp_path / "out.png"), "--iterations", "2"]) == 0
    )
    out = capsys.readouterr().out
    assert "no face owns the hole" in out and "framing: classical" in out
    [forced] = fill_images(default, [(Image.fromarray(astronaut), hole)], FillRequest(FAST, crop="context"))
    assert forced.framing == "context"  # the user insists on the face model


def test_a_face_whose_middle_is_blanked_is_filled_as_a_face_from_its_outline(default, astronaut):
    hole = np.zeros(astronaut.shape[:2], bool)
    hole[ASTRONAUT_MIDDLE] = True
    photo = astronaut.copy()
    photo[hole] = 0
    [result] = fill_images(default, [(Image.fromarray(photo), hole)], FillRequest(FAST))
    assert result.framing == "face" and NO_FACE_NOTE not in result.notes
    assert not result.view.confirmed  # no detector saw it before the fill: its outline vouched for it
    reference = photo_framing(astronaut, face_template(default), 64, True, default.framer)  # the intact photo
    assert np.linalg.norm(result.view.corners() - reference.corners(), axis=1).max() < 0.2 * reference.side()
    assert np.array_equal(np.asarray(result.image)[~hole], photo[~hole])


@pytest.mark.parametrize("where", ["suit", "texture"])
def test_a_face_sized_hole_that_no_face_owns_is_still_filled_classically(default, astronaut, where):
    """The same box as over the astronaut's face's middle, on her suit (below her face) and on a
    photo of grainy blobs: the framer proposes a face there, the fill must not be let through."""
    if where == "suit":
        photo, rows, cols = astronaut.copy(), slice(330, 406), slice(150, 228)
    else:
        noise = np.random.default_rng(0).normal(0, 1, (360, 480, 3))
        photo = np.clip(128 + 40 * cv2.GaussianBlur(noise, (0, 0), 4) / 0.07, 0, 255).astype(np.uint8)
        rows, cols = slice(140, 216), slice(200, 278)
    hole = np.zeros(photo.shape[:2], bool)
    hole[rows, cols] = True
    photo[hole] = 0
    [result] = fill_images(default, [(Image.fromarray(photo), hole)], FillRequest(FAST))
    assert result.framing == "classical" and result.view is None and result.notes == [NO_FACE_NOTE]


def test_outline_agreement_tells_a_faces_own_outline_from_another_picture(astronaut):
    known = np.ones((64, 64), bool)
    known[20:44, 18:46] = False
    face = cv2.resize(astronaut[40:240, 125:325], (64, 64), interpolation=cv2.INTER_AREA)
    assert outline_agreement(face, face, known) > 0.99
    lawn = np.random.default_rng(1).integers(0, 256, (64, 64, 3)).astype(np.uint8)
    assert abs(outline_agreement(lawn, face, known)) < OUTLINE_AGREEMENT / 2
    assert outline_agreement(np.full_like(face, 90), face, known) == 0.0  # a flat wall shows no outline


def test_with_crop_face_a_photo_without_any_face_is_an_error(default, tmp_path, capsys):
    flat = np.full((300, 400, 3), 120, np.uint8)  # nothing to find, nothing for the framer to like
    hole = np.zeros((300, 400), bool)
    hole[100:140, 150:260] = True
    with pytest.raises(UserError, match="no face owns the hole"):
        choose_view(default, flat, hole, crop="face")
    [auto] = fill_images(default, [(Image.fromarray(flat), hole)], FillRequest(FAST))
    assert auto.framing == "classical"


def test_pixels_outside_the_hole_never_change_on_a_face(default, astronaut):
    hole = eyes_hole(astronaut.shape)
    [result] = fill_images(default, [(Image.fromarray(astronaut), hole)], FillRequest(FAST))
    assert result.framing == "face" and result.view.side() > 140
    for picture in (result.image, result.raw, *result.candidates):
        assert np.array_equal(np.asarray(picture)[~hole], astronaut[~hole])


def test_a_face_box_from_the_user_is_used(default, astronaut, tmp_path, capsys):
    hole = eyes_hole(astronaut.shape)
    photo = astronaut.copy()
    photo[hole] = 0
    view = choose_view(default, photo, hole, face_box=(170, 70, 110, 120))
    assert view.how == "face-box" and eye_error(view, ASTRONAUT_EYE_CENTRES, face_template(default)) < 0.3
    source, mask = tmp_path / "damaged.png", tmp_path / "eyes.png"
    Image.fromarray(photo).save(source)
    Image.fromarray(hole.astype(np.uint8) * 255).save(mask)
    assert (
        main(
            [
                "fill",
                str(source),
                "--mask",
                str(mask),
                "--out",
                str(tmp_path / "o.png"),
                "--face-box",
                "170,70,110,120",
                "--iterations",
                "2",
            ]
        )
        == 0
    )
    assert "framing: face-box" in capsys.readouterr().out
    assert (
        main(
            ["fill", str(source), "--mask", str(mask), "--out", str(tmp_path / "o.png"), "--face-box", "170,70,-5,120"]
        )
        == 2
    )
    assert "positive width" in capsys.readouterr().err


def test_a_twelve_megapixel_photo_is_searched_at_a_bounded_size(default):
    photo, hole, eyes = placed_face(8.0, 16.0, canvas=(4000, 3000))  # a face about 700 pixels wide
    windows = faces._search_windows(photo.shape[:2], hole)
    assert all(max(size) <= max(faces.PHOTO_SIDE, faces.WINDOW_SIDE) for _, size in windows)
    photo[hole] = 0
    view = find_face_framing(photo, hole, face_template(default), 64, default.framer)
    assert view is not None and eye_error(view, eyes, face_template(default)) < 0.3


def test_face_framing_metadata_is_written_read_and_may_be_absent(tmp_path, tiny_checkpoint_path, default):
    tiny = load_checkpoint(tiny_checkpoint_path)
    assert face_template(tiny) is None and tiny.framer is None  # an older checkpoint: framed the older way
    template = face_template(default)
    path = save_checkpoint(
        tmp_path / "framed.safetensors",
        tiny.generator,
        tiny.discriminator,
        tiny.prior,
        {},
        content="faces",
        framing=template.to_metadata(),
    )
    again = face_template(load_checkpoint(path))
    assert np.allclose(again.points, template.points, atol=1e-3) and again.size == template.size
    assert np.allclose(again.at_size(32).points, (template.points + 0.5) / 2 - 0.5, atol=1e-3)
    with pytest.raises(UserError, match="invalid face framing"):
        FaceTemplate.from_metadata({"points": [[1, 2]], "box": [0, 0, 1, 1], "size": 64})


def test_face_boxes_are_parsed_or_refused_in_one_line():
    assert parse_face_box("10, 20,30 40") == (10.0, 20.0, 30.0, 40.0)
    for text in ("10,20,30", "a,b,c,d", "1,2,0,4", "1,2,3,nan"):
        with pytest.raises(UserError, match="X,Y,W,H"):
            parse_face_box(text)


def test_batch_reads_a_face_box_beside_the_image(default, astronaut, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    hole = eyes_hole(astronaut.shape)
    Image.fromarray(astronaut).save(folder / "a.png")
    Image.fromarray(hole.astype(np.uint8) * 255).save(folder / "a_mask.png")
    (folder / "a_face.txt").write_text("170 70 110 120\n")
    assert main(["batch", str(folder), str(tmp_path / "out"), "--iterations", "2", "--restarts", "1"]) == 0
    import json

    [record] = [json.loads(line) for line in (tmp_path / "out" / "report.jsonl").read_text().splitlines()]
    assert record["framing"] == "face-box" and record["view"]["side"] > 100
    assert not (tmp_path / "out" / "a_face.txt").exists() and (tmp_path / "out" / "a.png").is_file()


def test_train_framer_adds_a_framer_and_the_face_framing(tmp_path, tiny_checkpoint_path, capsys):
    run = tmp_path / "run"
    args = [
        "train-framer",
        "--checkpoint",
        str(tiny_checkpoint_path),
        "--data",
        str(EXAMPLES),
        "--out",
        str(run),
        "--steps",
        "6",
        "--batch-size",
        "8",
        "--log-every",
        "3",
    ]
    assert main(args) == 0
    assert str(run / "model.safetensors") in capsys.readouterr().out
    framed = load_checkpoint(run)
    assert framed.framer is not None and face_template(framed).size == 32 and face_template(framed).images >= 8
    assert framed.training["framer"]["steps"] == 6
    tiny = load_checkpoint(tiny_checkpoint_path)
    assert all(
        torch_equal(a, b) for a, b in zip(framed.generator.state_dict().values(), tiny.generator.state_dict().values())
    )
    import json

    records = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [3, 6] and "point_error" in records[-1]
    assert main([*args, "--resume"]) == 0  # already finished: nothing more to do, the checkpoint is written again
    assert main([*args[:-4], "--steps", "9", "--resume"]) == 2
    assert "--steps 6" in capsys.readouterr().err


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))
