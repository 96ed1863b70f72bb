"""The digits data: scikit-learn's bundled set by default, or the user's files.

`load_data(problem, path)` picks a reader from the path:

- no path: scikit-learn's handwritten digits, 1,797 images of 8×8 pixels that
  ship inside the package (nothing is downloaded);
- MNIST IDX files, gzipped or not: a folder holding `train-images-idx3-ubyte`
  and `train-labels-idx1-ubyte` (and usually the `t10k-` pair), or the path of
  one images or labels file whose partner sits beside it;
- a CSV file with a `label` column and one column per pixel (the "digit
  recognizer" layout; a header-less file takes its first column as the label);
- a folder of PNG images with a CSV whose columns are a file name
  (`filename`, `file`, `image` or `path`) and `label`, or the path of that CSV.

Pixels end up as float64 in [0, 1] (the bundled digits are divided by 16,
everything else by 255) and labels as int64 in 0–9. MNIST's own train/t10k
split is kept; every other source is split once, stratified by label and
seeded, with scikit-learn's `train_test_split`. A file that cannot be read
raises `DataError` with one line that names the file.
"""

import gzip
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from sidebyside.implementations import not_installed
from sidebyside.implementations.digits.problem import CLASSES

BUNDLED = "sklearn digits"  # the source name recorded in results for the default data
BUNDLED_PIXELS = 64  # its images are 8×8
EXTRA = 'pip install -e ".[digits]"'  # what installs scikit-learn, pandas and pillow


class DataError(ValueError):
    """A data file is missing or malformed; the message is one line naming the file."""

    def __init__(self, path, problem):
        super().__init__(f"{path}: {problem}")


def missing_libraries():
    """The digits extra's libraries that are not installed (scikit-learn splits every data set)."""
    return ["scikit-learn" for _ in not_installed(["sklearn"])]


def needs(module, package, path):
    """`module` imported, or a DataError saying which extra reads `path`."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise DataError(path, f"reading it needs {package}, which is not installed ({EXTRA})") from None


@dataclass(frozen=True)
class Digits:
    """Train and test images (rows of pixels in [0, 1]) and their labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str  # BUNDLED or the path given

    @property
    def D_in(self):
        return self.x_train.shape[1]


def load_data(problem, path=None):
    """The data set for `problem` (its seed and test_fraction) from `path`, or the bundled digits."""
    return _load_cached(None if path is None else str(path), problem.seed, problem.test_fraction)


@lru_cache(maxsize=4)
def _load_cached(path, seed, test_fraction):
    if path is None:
        x, y = read_bundled()
        parts = split(x, y, seed, test_fraction, BUNDLED)
        source = BUNDLED
    else:
        parts = read_path(Path(path), seed, test_fraction)
        source = path
    # The cache hands the same arrays to every caller, who must not write into them.
    return Digits(*parts, source=source)


def read_bundled():
    """scikit-learn's digits: 8×8 images with pixel values 0–16, scaled to [0, 1]."""
    digits = needs("sklearn.datasets", "scikit-learn", BUNDLED).load_digits()
    return digits.data.astype(np.float64) / 16.0, digits.target.astype(np.int64)


def split(x, y, seed, test_fraction, source):
    """A seeded split stratified by label: every digit keeps its share in train and test."""
    train_test_split = needs("sklearn.model_selection", "scikit-learn", source).train_test_split
    try:
        x_train, x_test, y_train, y_test = train_test_split(
            x, y, test_size=test_fraction, stratify=y, random_state=seed
        )
    except ValueError as error:
        raise DataError(source, f"cannot split {len(y)} images into train and test: {error}") from None
    return x_train, y_train, x_test, y_test


def read_path(path, seed, test_fraction):
    """Pick the reader for `path` and return x_train, y_train, x_test, y_test."""
    if not path.exists():
        raise DataError(path, "no such file or folder")
    if path.is_dir():
        if any(is_idx(child) for child in path.iterdir()):
            return read_idx_folder(path, seed, test_fraction)
        listing = find_listing(path)
        return split(*read_png_folder(listing), seed, test_fraction, path)
    if is_idx(path):
        images, labels = idx_pair(path)
        return split(*read_idx_pair(images, labels), seed, test_fraction, path)
    if path.suffix.lower() == ".csv":
        if listing_columns(path):
            return split(*read_png_folder(path), seed, test_fraction, path)
        return split(*read_csv(path), seed, test_fraction, path)
    raise DataError(path, "not a data set: expected a folder, MNIST IDX files or a .csv file")


# MNIST IDX ----------------------------------------------------------------

# The third byte of an IDX magic number gives the element type (big-endian).
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def is_idx(path):
    """Whether the file name looks like an IDX file: `*-ubyte`, `*.idx`, `*idx3*`, with or without .gz."""
    name = path.name.lower().removesuffix(".gz")
    return path.is_file() and (name.endswith("ubyte") or name.endswith(".idx") or re.search(r"idx\d", name) is not None)


def open_maybe_gzipped(path):
    """The bytes of `path`, decompressed when it starts with the gzip magic number."""
    with open(path, "rb") as file:
        data = file.read()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as error:
            raise DataError(path, f"broken gzip file: {error}") from None
    return data


def read_idx(path, dimensions):
    """An IDX file as a numpy array with `dimensions` axes, checking its header.

    The format (yann.lecun.com/exdb/mnist): a magic number of two zero bytes,
    a type byte and a byte counting the dimensions; then each dimension as a
    big-endian 32-bit integer; then the values, row-major.
    """
    data = open_maybe_gzipped(path)
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] not in IDX_TYPES:
        raise DataError(path, f"not an IDX file (magic number 0x{data[:4].hex() or 'empty'})")
    if data[3] != dimensions:
        raise DataError(path, f"expected an IDX file of {dimensions} dimensions, found {data[3]}")
    header = 4 + 4 * dimensions
    if len(data) < header:
        raise DataError(path, "IDX header is truncated")
    shape = tuple(int(n) for n in np.frombuffer(data, ">u4", dimensions, offset=4))
    dtype = np.dtype(IDX_TYPES[data[2]])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise DataError(path, f"IDX header announces shape {shape}: {expected} bytes, file has {len(data)}")
    return np.frombuffer(data, dtype, offset=header).reshape(shape)


def read_idx_pair(images_path, labels_path):
    """Images (N, rows·columns) scaled to [0, 1] and labels (N,) from an IDX pair."""
    images = read_idx(images_path, 3)
    labels = read_idx(labels_path, 1)
    if len(images) != len(labels):
        raise DataError(labels_path, f"{len(labels)} labels for {len(images)} images in {images_path.name}")
    x = pixels(images.reshape(len(images), -1).astype(np.float64), images_path)
    return x, check_labels(labels, labels_path)


def idx_pair(path):
    """The images and labels files of the pair that `path` belongs to (MNIST's names)."""
    name = path.name
    if "labels" in name or "idx1" in name:
        images_name, labels_name = name.replace("labels", "images").replace("idx1", "idx3"), name
    elif "images" in name or "idx3" in name:
        images_name, labels_name = name, name.replace("images", "labels").replace("idx3", "idx1")
    else:
        raise DataError(path, "cannot tell images from labels: name IDX files like train-images-idx3-ubyte")
    return beside(path, images_name), beside(path, labels_name)


def beside(path, name):
    """The file `name` in the folder of `path`, gzipped or not."""
    plain = path.with_name(name.removesuffix(".gz"))
    for candidate in (path.with_name(name), plain, plain.with_name(plain.name + ".gz")):
        if candidate.is_file():
            return candidate
    raise DataError(path.with_name(name), f"missing: the partner of {path.name}")


def read_idx_folder(folder, seed, test_fraction):
    """MNIST as distributed: keep its train/t10k split, or split a single pair."""
    image_files = sorted(f for f in folder.iterdir() if is_idx(f) and ("images" in f.name or "idx3" in f.name))
    if not image_files:
        raise DataError(folder, "no IDX images file (like train-images-idx3-ubyte) in this folder")
    train = [f for f in image_files if f.name.startswith("train")]
    test = [f for f in image_files if f.name.startswith(("t10k", "test"))]
    if len(train) == 1 and len(test) == 1:
        x_train, y_train = read_idx_pair(*idx_pair(train[0]))
        x_test, y_test = read_idx_pair(*idx_pair(test[0]))
        if x_train.shape[1] != x_test.shape[1]:
            raise DataError(test[0], f"images of {x_test.shape[1]} pixels, but {x_train.shape[1]} in {train[0].name}")
        return x_train, y_train, x_test, y_test
    if len(image_files) == 1:
        return split(*read_idx_pair(*idx_pair(image_files[0])), seed, test_fraction, folder)
    names = ", ".join(f.name for f in image_files)
    raise DataError(folder, f"cannot tell the train images from the test images among {names}")


# CSV of pixels -------------------------------------------------------------


def read_csv(path):
    """Images and labels from a CSV: a `label` column plus one column per pixel.

    A file whose first line is all numbers has no header, and its first column
    is the label (the layout of the common MNIST-in-CSV files).
    """
    pd = needs("pandas", "pandas", path)

    first = first_line(path)
    headerless = all(is_number(field) for field in first.split(","))
    try:
        table = pd.read_csv(path, header=None if headerless else 0, skip_blank_lines=True)
    except pd.errors.ParserError as error:
        raise DataError(path, f"ragged rows: {one_line(error)}") from None
    except (pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise DataError(path, f"not a CSV of pixels: {one_line(error)}") from None
    if headerless:
        label_column = table.columns[0]
    else:
        matches = [column for column in table.columns if str(column).strip().lower() == "label"]
        if not matches:
            raise DataError(path, "no 'label' column in the header")
        label_column = matches[0]
    if table.shape[1] < 2:
        raise DataError(path, "no pixel columns besides the label")
    if len(table) == 0:
        raise DataError(path, "no rows of data")
    offset = 1 if headerless else 2  # the file line of table row 0
    # Text in a column makes pandas keep it as strings: find the first such cell.
    numeric = table.apply(pd.to_numeric, errors="coerce")
    not_numbers = (numeric.isna() & table.notna()).any(axis=1).to_numpy()
    if not_numbers.any():
        raise DataError(path, f"line {int(np.argmax(not_numbers)) + offset} holds a value that is not a number")
    # A short row is padded with missing values by pandas (a long one is a ParserError above).
    blank = table.isna().any(axis=1).to_numpy()
    if blank.any():
        row = int(np.argmax(blank))
        raise DataError(path, f"ragged rows: line {row + offset} has {int(table.iloc[row].notna().sum())} fields, expected {table.shape[1]}")
    values = numeric.to_numpy(dtype=np.float64)
    label_index = list(table.columns).index(label_column)
    labels = check_labels(values[:, label_index], path)
    x = pixels(np.delete(values, label_index, axis=1), path)
    return x, labels


def first_line(path):
    try:
        with open(path, encoding="utf-8") as file:
            return file.readline().strip()
    except UnicodeDecodeError:
        raise DataError(path, "not a text file") from None


def is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


# Folder of PNG images ------------------------------------------------------

NAME_COLUMNS = ("filename", "file", "image", "path")  # accepted headers of the file-name column


def listing_columns(csv_path):
    """(file-name column, label column) if the CSV lists images, else None."""
    header = [field.strip().lower() for field in first_line(csv_path).split(",")]
    names = [column for column in NAME_COLUMNS if column in header]
    if names and "label" in header:
        return names[0], "label"
    return None


def find_listing(folder):
    """The CSV in `folder` that lists images and labels (train.csv when there are several)."""
    listings = sorted(f for f in folder.glob("*.csv") if listing_columns(f))
    if not listings:
        raise DataError(folder, "no MNIST IDX files and no CSV with filename and label columns in this folder")
    if len(listings) > 1:
        named_train = [f for f in listings if f.stem.lower() == "train"]
        if len(named_train) != 1:
            raise DataError(folder, f"several image listings ({', '.join(f.name for f in listings)}); pass one CSV path")
        return named_train[0]
    return listings[0]


def read_png_folder(csv_path):
    """Images named in `csv_path` (file name and label per row), as grayscale pixels.

    A file name is looked up beside the CSV first, then anywhere below that
    folder (the article's layout keeps the images in Images/train/). Images
    with an alpha channel are laid on black first, so a white digit on a
    transparent background reads as white on black, like MNIST.
    """
    pd = needs("pandas", "pandas", csv_path)
    needs("PIL", "pillow", csv_path)
    from PIL import Image, UnidentifiedImageError

    name_column, label_column = listing_columns(csv_path)
    try:
        table = pd.read_csv(csv_path, dtype=str)
    except pd.errors.ParserError as error:
        raise DataError(csv_path, f"ragged rows: {one_line(error)}") from None
    table.columns = [str(column).strip().lower() for column in table.columns]
    if len(table) == 0:
        raise DataError(csv_path, "lists no images")
    if table[[name_column, label_column]].isna().any(axis=None):
        line = int(np.argmax(table[[name_column, label_column]].isna().any(axis=1).to_numpy())) + 2
        raise DataError(csv_path, f"line {line} lacks a file name or a label")
    labels = pd.to_numeric(table[label_column], errors="coerce").to_numpy(dtype=np.float64)
    labels = check_labels(labels, csv_path)
    folder = csv_path.parent
    elsewhere = None  # file name -> path below the folder, built on the first miss
    rows, shape = [], None
    for name in table[name_column]:
        image_path = folder / name.strip()
        if not image_path.is_file():
            if elsewhere is None:
                elsewhere = {}
                for found in sorted(folder.rglob("*")):
                    elsewhere.setdefault(found.name, found)
            image_path = elsewhere.get(Path(name.strip()).name)
            if image_path is None or not image_path.is_file():
                raise DataError(folder / name.strip(), f"missing image listed in {csv_path.name}")
        try:
            with Image.open(image_path) as image:
                if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                    image = Image.alpha_composite(Image.new("RGBA", image.size, (0, 0, 0, 255)), image.convert("RGBA"))
                gray = np.asarray(image.convert("L"), dtype=np.float64)
        except (UnidentifiedImageError, OSError) as error:
            raise DataError(image_path, f"not a readable image: {one_line(error)}") from None
        if shape is None:
            shape = gray.shape
        elif gray.shape != shape:
            raise DataError(image_path, f"image is {gray.shape[1]}×{gray.shape[0]}, the first one was {shape[1]}×{shape[0]}")
        rows.append(gray.ravel())
    return np.stack(rows) / 255.0, labels


# Checks shared by the readers -----------------------------------------------


def check_labels(labels, path):
    """Labels as int64, or a DataError when one is not a whole number in 0–9."""
    labels = np.asarray(labels, dtype=np.float64)
    bad = ~np.isfinite(labels) | (labels != np.round(labels)) | (labels < 0) | (labels > CLASSES - 1)
    if bad.any():
        index = int(np.argmax(bad))
        raise DataError(path, f"labels outside 0–9 (found {labels[index]:g} at entry {index + 1})")
    return labels.astype(np.int64)


def pixels(values, path):
    """Pixel values scaled to [0, 1]: divided by 255 unless they already lie in [0, 1]."""
    if values.size == 0:
        raise DataError(path, "no pixels")
    low, high = float(values.min()), float(values.max())
    if not (np.isfinite(low) and np.isfinite(high)) or low < 0 or high > 255:
        raise DataError(path, f"pixel values must lie in 0–255, found {low:g} to {high:g}")
    return values / 255.0 if high > 1 else values


def one_line(error):
    """The first line of an exception's message."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
