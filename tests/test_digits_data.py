"""The digits data: the bundled set, the three user formats, and bad files.

Every reader is checked on small files generated here, against the arrays
they were written from; every malformed file must give a DataError of one
line that names the offending file.
"""

import gzip
import struct

import numpy as np
import pytest

from sidebyside.implementations.digits import data as digits_data
from sidebyside.implementations.digits.data import DataError, load_data, read_csv, read_idx_pair, read_path, read_png_folder
from sidebyside.implementations.digits.problem import DigitsProblem

PROBLEM = DigitsProblem()


def make_images(count=60, rows=4, columns=3, seed=1):
    """uint8 images and labels 0-9 with every digit present `count / 10` times."""
    generator = np.random.default_rng(seed)
    images = generator.integers(0, 256, size=(count, rows, columns), dtype=np.uint8)
    labels = np.arange(count) % 10
    return images, labels


def idx_bytes(array, dimensions=None):
    """`array` (uint8) in MNIST's IDX format."""
    array = np.asarray(array, dtype=np.uint8)
    header = struct.pack(">BBBB", 0, 0, 0x08, dimensions or array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write(path, content, gzipped=False):
    path.write_bytes(gzip.compress(content) if gzipped else content)
    return path


def write_mnist(folder, gzipped, images, labels, prefix="train"):
    suffix = ".gz" if gzipped else ""
    images_path = write(folder / f"{prefix}-images-idx3-ubyte{suffix}", idx_bytes(images), gzipped)
    labels_path = write(folder / f"{prefix}-labels-idx1-ubyte{suffix}", idx_bytes(labels), gzipped)
    return images_path, labels_path


def write_pixel_csv(path, images, labels, header=True):
    flat = images.reshape(len(images), -1)
    lines = []
    if header:
        lines.append(",".join(["label"] + [f"pixel{i}" for i in range(flat.shape[1])]))
    lines += [",".join(str(v) for v in [label, *row]) for label, row in zip(labels, flat)]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_png_folder(folder, images, labels, subfolder=None, rgba=False):
    from PIL import Image

    image_folder = folder / subfolder if subfolder else folder
    image_folder.mkdir(parents=True, exist_ok=True)
    names = []
    for index, image in enumerate(images):
        name = f"{index}.png"
        if rgba:
            # A white digit on a transparent background: the pixel values live in alpha.
            rgba_array = np.zeros(image.shape + (4,), dtype=np.uint8)
            rgba_array[..., :3] = 255
            rgba_array[..., 3] = image
            Image.fromarray(rgba_array, "RGBA").save(image_folder / name)
        else:
            Image.fromarray(image, "L").save(image_folder / name)
        names.append(name)
    listing = folder / "train.csv"
    listing.write_text("filename,label\n" + "".join(f"{n},{l}\n" for n, l in zip(names, labels)))
    return listing


def assert_one_line_naming(error, path):
    message = str(error.value)
    assert "\n" not in message
    assert str(path) in message


# The bundled digits ----------------------------------------------------------


def test_bundled_digits_scaled_split_stratified_and_seeded():
    digits = load_data(PROBLEM)
    assert digits.source == "sklearn digits"
    assert (digits.x_train.shape, digits.x_test.shape) == ((1437, 64), (360, 64))
    for x in (digits.x_train, digits.x_test):
        assert x.dtype == np.float64 and x.min() == 0.0 and x.max() == 1.0
    # Stratified: each digit's share of the test set equals its share of the whole, to one image.
    everything = np.concatenate([digits.y_train, digits.y_test])
    for label in range(10):
        expected = np.mean(everything == label) * len(digits.y_test)
        assert abs(np.sum(digits.y_test == label) - expected) <= 1
    # The same seed gives the same split; another seed another one.
    again = digits_data._load_cached.__wrapped__(None, PROBLEM.seed, PROBLEM.test_fraction)
    np.testing.assert_array_equal(again.y_test, digits.y_test)
    other = load_data(PROBLEM.with_(seed=1))
    assert not np.array_equal(other.y_test, digits.y_test)


# MNIST IDX -------------------------------------------------------------------


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
def test_idx_pair_round_trip(tmp_path, gzipped):
    images, labels = make_images()
    images_path, labels_path = write_mnist(tmp_path, gzipped, images, labels)
    x, y = read_idx_pair(images_path, labels_path)
    np.testing.assert_array_equal(x, images.reshape(len(images), -1) / 255.0)
    np.testing.assert_array_equal(y, labels)
    # Either file of the pair selects it.
    for path in (images_path, labels_path):
        x_train, y_train, x_test, y_test = read_path(path, seed=0, test_fraction=0.2)
        assert len(y_train) + len(y_test) == len(labels) and x_train.shape[1] == 12


def test_idx_folder_keeps_mnist_split(tmp_path):
    images, labels = make_images(60)
    test_images, test_labels = make_images(20, seed=2)
    write_mnist(tmp_path, True, images, labels, "train")
    write_mnist(tmp_path, False, test_images, test_labels, "t10k")
    digits = load_data(PROBLEM, tmp_path)
    np.testing.assert_array_equal(digits.x_train, images.reshape(60, -1) / 255.0)
    np.testing.assert_array_equal(digits.y_test, test_labels)
    assert digits.source == str(tmp_path) and digits.D_in == 12


def test_idx_wrong_magic_number(tmp_path):
    images, labels = make_images()
    images_path, labels_path = write_mnist(tmp_path, False, images, labels)
    write(images_path, b"\x12\x34" + idx_bytes(images)[2:])
    with pytest.raises(DataError, match="magic number 0x1234") as error:
        read_idx_pair(images_path, labels_path)
    assert_one_line_naming(error, images_path)


def test_idx_truncated_and_mismatched(tmp_path):
    images, labels = make_images()
    images_path, labels_path = write_mnist(tmp_path, True, images, labels)
    write(images_path, idx_bytes(images)[:-5], gzipped=True)
    with pytest.raises(DataError, match="bytes") as error:
        read_idx_pair(images_path, labels_path)
    assert_one_line_naming(error, images_path)
    write(images_path, idx_bytes(images), gzipped=True)
    write(labels_path, idx_bytes(labels[:-1]), gzipped=True)
    with pytest.raises(DataError, match="59 labels for 60 images") as error:
        read_idx_pair(images_path, labels_path)
    assert_one_line_naming(error, labels_path)


def test_idx_labels_outside_0_to_9(tmp_path):
    images, labels = make_images()
    labels = labels.copy()
    labels[7] = 12
    images_path, labels_path = write_mnist(tmp_path, False, images, labels)
    with pytest.raises(DataError, match="labels outside 0–9") as error:
        read_idx_pair(images_path, labels_path)
    assert_one_line_naming(error, labels_path)


def test_idx_missing_partner(tmp_path):
    images, _ = make_images()
    images_path = write(tmp_path / "train-images-idx3-ubyte", idx_bytes(images))
    with pytest.raises(DataError, match="missing") as error:
        load_data(PROBLEM, images_path)
    assert_one_line_naming(error, tmp_path / "train-labels-idx1-ubyte")


# CSV of pixels -----------------------------------------------------------------


@pytest.mark.parametrize("header", [True, False], ids=["header", "headerless"])
def test_csv_round_trip(tmp_path, header):
    images, labels = make_images()
    path = write_pixel_csv(tmp_path / "train.csv", images, labels, header)
    x, y = read_csv(path)
    np.testing.assert_array_equal(x, images.reshape(len(images), -1) / 255.0)
    np.testing.assert_array_equal(y, labels)
    digits = load_data(PROBLEM, path)
    assert (len(digits.y_train), len(digits.y_test), digits.D_in) == (48, 12, 12)


def test_csv_ragged_rows(tmp_path):
    images, labels = make_images()
    path = write_pixel_csv(tmp_path / "long.csv", images, labels)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:4] + [lines[4] + ",7"] + lines[5:]) + "\n")
    with pytest.raises(DataError, match="ragged rows") as error:
        read_csv(path)
    assert_one_line_naming(error, path)
    short = tmp_path / "short.csv"
    short.write_text("\n".join(lines[:6] + [lines[6].rsplit(",", 1)[0]] + lines[7:]) + "\n")
    with pytest.raises(DataError, match="line 7 has 12 fields, expected 13") as error:
        read_csv(short)
    assert_one_line_naming(error, short)


def test_csv_labels_outside_0_to_9_and_bad_values(tmp_path):
    images, labels = make_images()
    labels = labels.copy()
    labels[3] = 10
    path = write_pixel_csv(tmp_path / "labels.csv", images, labels)
    with pytest.raises(DataError, match="labels outside 0–9") as error:
        read_csv(path)
    assert_one_line_naming(error, path)
    text = tmp_path / "text.csv"
    text.write_text("label,a,b\n1,2,3\n4,five,6\n")
    with pytest.raises(DataError, match="line 3 holds a value that is not a number") as error:
        read_csv(text)
    assert_one_line_naming(error, text)
    unlabelled = tmp_path / "unlabelled.csv"
    unlabelled.write_text("digit,a,b\n1,2,3\n")
    with pytest.raises(DataError, match="no 'label' column") as error:
        read_csv(unlabelled)
    assert_one_line_naming(error, unlabelled)
    too_bright = write_pixel_csv(tmp_path / "bright.csv", images.astype(int) * 2, np.arange(60) % 10)
    with pytest.raises(DataError, match="0–255") as error:
        read_csv(too_bright)
    assert_one_line_naming(error, too_bright)


# Folder of PNG images ------------------------------------------------------------


@pytest.mark.parametrize("subfolder, rgba", [(None, False), ("Images/train", True)], ids=["flat", "article-layout-rgba"])
def test_png_folder_round_trip(tmp_path, subfolder, rgba):
    images, labels = make_images()
    listing = write_png_folder(tmp_path, images, labels, subfolder, rgba)
    x, y = read_png_folder(listing)
    np.testing.assert_array_equal(x, images.reshape(len(images), -1) / 255.0)
    np.testing.assert_array_equal(y, labels)
    # The folder and the listing both select the reader.
    for path in (tmp_path, listing):
        digits = load_data(PROBLEM, path)
        assert len(digits.y_train) + len(digits.y_test) == 60 and digits.D_in == 12


def test_png_missing_image(tmp_path):
    images, labels = make_images()
    listing = write_png_folder(tmp_path, images, labels)
    (tmp_path / "17.png").unlink()
    with pytest.raises(DataError, match="missing image listed in train.csv") as error:
        load_data(PROBLEM, tmp_path)
    assert_one_line_naming(error, tmp_path / "17.png")


def test_png_labels_outside_0_to_9_and_odd_sizes(tmp_path):
    from PIL import Image

    images, labels = make_images()
    listing = write_png_folder(tmp_path, images, labels)
    listing.write_text(listing.read_text().replace("\n5.png,5\n", "\n5.png,-1\n"))
    with pytest.raises(DataError, match="labels outside 0–9") as error:
        read_png_folder(listing)
    assert_one_line_naming(error, listing)
    write_png_folder(tmp_path, images, labels)
    Image.fromarray(np.zeros((5, 5), np.uint8), "L").save(tmp_path / "9.png")
    with pytest.raises(DataError, match="5×5, the first one was 3×4") as error:
        read_png_folder(listing)
    assert_one_line_naming(error, tmp_path / "9.png")
    (tmp_path / "3.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="not a readable image") as error:
        read_png_folder(listing)
    assert_one_line_naming(error, tmp_path / "3.png")


# Paths that are no data set --------------------------------------------------------


def test_unusable_paths(tmp_path):
    with pytest.raises(DataError, match="no such file or folder") as error:
        load_data(PROBLEM, tmp_path / "absent")
    assert_one_line_naming(error, tmp_path / "absent")
    with pytest.raises(DataError, match="no MNIST IDX files and no CSV") as error:
        load_data(PROBLEM, tmp_path)
    assert_one_line_naming(error, tmp_path)
    other = write(tmp_path / "notes.txt", b"hello")
    with pytest.raises(DataError, match="not a data set") as error:
        load_data(PROBLEM, other)
    assert_one_line_naming(error, other)
    tiny = write_pixel_csv(tmp_path / "tiny.csv", *make_images(12))
    with pytest.raises(DataError, match="cannot split 12 images") as error:
        load_data(PROBLEM, tiny)
    assert_one_line_naming(error, tiny)
