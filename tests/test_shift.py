"""Image corruptions and the dataset-shift report (skbdl.shift)."""

import numpy as np
import pytest
from scipy import fft
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from skbdl import metrics
from skbdl.shift import CORRUPTIONS, corrupt, dataset_shift_report
from skbdl.uncertainty import entropy

KINDS = sorted(CORRUPTIONS)
RANDOM_KINDS = {
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "speckle_noise",
    "elastic_transform",
    "rotate",
}
DIGITS_RANGE = (0, 16)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X, y


@pytest.fixture(scope="module")
def fitted(digits):
    X, y = digits
    model = LogisticRegression(max_iter=3000).fit(X[:1000], y[:1000])
    return model, X[1000:], y[1000:]


def test_at_least_eight_kinds():
    assert len(CORRUPTIONS) >= 8
    assert all(callable(function) for function in CORRUPTIONS.values())


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "shape",
    [(6, 64), (6, 8, 8), (6, 1, 8, 8), (4, 3, 12, 10)],
    ids=["flat", "nhw", "n1hw", "nchw"],
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.uint8])
def test_shape_dtype_range_and_no_mutation(kind, shape, dtype):
    rng = np.random.RandomState(0)
    images = (rng.uniform(0, 255, size=shape)).astype(dtype)
    before = images.copy()
    out = corrupt(images, kind, 5, value_range=(0, 255), random_state=0)
    assert out.shape == images.shape
    assert out.dtype == images.dtype
    assert out.min() >= 0 and out.max() <= 255
    np.testing.assert_array_equal(images, before)


@pytest.mark.parametrize("kind", KINDS)
def test_flat_images_with_image_shape_equal_channel_first(kind):
    images = np.random.RandomState(1).uniform(size=(5, 3, 8, 6))
    flat = corrupt(images.reshape(5, -1), kind, 3, image_shape=(3, 8, 6), random_state=0)
    nchw = corrupt(images, kind, 3, random_state=0, value_range=(images.min(), images.max()))
    np.testing.assert_allclose(flat.reshape(images.shape), nchw)


@pytest.mark.parametrize("kind", KINDS)
def test_determinism(kind, digits):
    X = digits[0][:20]
    first = corrupt(X, kind, 4, random_state=3, value_range=DIGITS_RANGE)
    np.testing.assert_array_equal(
        first, corrupt(X, kind, 4, random_state=3, value_range=DIGITS_RANGE)
    )
    other = corrupt(X, kind, 4, random_state=4, value_range=DIGITS_RANGE)
    assert np.array_equal(first, other) == (kind not in RANDOM_KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_distance_from_clean_grows_with_severity(kind, digits):
    # Mean absolute change of 200 digits, same seed at every severity: strictly
    # increasing from severity 1 to 5, and non-zero at severity 1.
    X = digits[0][:200]
    distance = [
        np.abs(corrupt(X, kind, s, random_state=0, value_range=DIGITS_RANGE) - X).mean()
        for s in range(1, 6)
    ]
    assert distance[0] > 0, distance
    assert np.all(np.diff(distance) > 0), f"{kind}: {np.round(distance, 4)}"


def test_inferred_value_range_is_the_images_extremes(digits):
    X = digits[0][:50]
    np.testing.assert_array_equal(
        corrupt(X, "brightness", 2), corrupt(X, "brightness", 2, value_range=(X.min(), X.max()))
    )
    assert corrupt(X, "brightness", 5).max() == X.max()  # clipped at the top of the range


def test_closed_forms():
    rng = np.random.RandomState(0)
    x = rng.uniform(size=(3, 2, 8, 8))
    unit = (0, 1)
    out = corrupt(x, "brightness", 1, value_range=unit)
    np.testing.assert_allclose(out, np.clip(x + 0.1, 0, 1))
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    np.testing.assert_allclose(
        corrupt(x, "contrast", 5, value_range=unit), mean + 0.05 * (x - mean)
    )
    # Gaussian noise: x + sigma * eps with the seed's standard normals.
    eps = np.random.RandomState(7).standard_normal(x.shape)
    np.testing.assert_allclose(
        corrupt(x, "gaussian_noise", 5, value_range=unit, random_state=7),
        np.clip(x + 0.38 * eps, 0, 1),
    )
    # Blurs keep the mean of a constant image and of each image (up to edge effects).
    flat = np.full((1, 1, 8, 8), 0.4)
    for kind in ("gaussian_blur", "defocus_blur", "low_resolution", "elastic_transform", "rotate"):
        np.testing.assert_allclose(corrupt(flat, kind, 5, value_range=unit, random_state=0), flat)


def test_impulse_noise_fraction_and_nesting():
    x = np.full((20, 1, 32, 32), 0.5)
    hit = [
        corrupt(x, "impulse_noise", s, value_range=(0, 1), random_state=0) != 0.5 for s in (1, 5)
    ]
    assert np.all(hit[1][hit[0]])  # pixels hit at severity 1 are hit at 5
    assert abs(hit[1].mean() - 0.27) < 0.01  # 20 480 values, binomial sd 0.003


@pytest.mark.parametrize(("severity", "quality"), [(1, 25), (5, 7)])
def test_jpeg_matches_a_direct_block_dct(severity, quality):
    # One 8 x 8 block: the DCT coefficients of the result are multiples of the
    # luminance table scaled to the severity's quality.
    x = np.random.RandomState(0).uniform(0.3, 0.7, size=(1, 1, 8, 8))
    out = corrupt(x, "jpeg_compression", severity, value_range=(0, 1))
    assert ((out > 0) & (out < 1)).all()  # no clipping
    coefficients = fft.dctn(out[0, 0] * 255 - 128, norm="ortho")
    table = np.maximum(np.floor((np.array(_LUMINANCE) * (5000 / quality) + 50) / 100), 1)
    np.testing.assert_allclose(coefficients / table, np.round(coefficients / table), atol=1e-6)
    assert np.abs(coefficients).max() > 0


_LUMINANCE = [
    [16, 11, 10, 16, 24, 40, 51, 61],
    [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56],
    [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77],
    [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101],
    [72, 92, 95, 98, 112, 100, 103, 99],
]


def test_rotation_turns_the_centre_of_mass_by_the_stated_angle():
    # A blob off-centre in a 33 x 33 image: at severity s its centre of mass turns
    # by 6 s degrees about the image centre (either way), its distance unchanged.
    rows, cols = np.mgrid[:33, :33] - 16.0
    blob = np.exp(-((rows - 8) ** 2 + (cols - 3) ** 2) / 4)[None, None]
    for severity in (1, 5):
        out = corrupt(blob, "rotate", severity, value_range=(0, 1), random_state=0)[0, 0]
        before = np.array([np.sum(blob[0, 0] * rows), np.sum(blob[0, 0] * cols)]) / blob.sum()
        after = np.array([np.sum(out * rows), np.sum(out * cols)]) / out.sum()
        turn = np.degrees(np.arctan2(*after[::-1]) - np.arctan2(*before[::-1]))
        assert abs(abs(turn) - 6 * severity) < 0.5, turn
        assert np.linalg.norm(after) == pytest.approx(np.linalg.norm(before), rel=0.02)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(kind="fog", severity=1), ValueError, "Unknown corruption"),
        (dict(kind="contrast", severity=0), ValueError, "from 1 to 5"),
        (dict(kind="contrast", severity=2.0), TypeError, "integer"),
        (dict(kind="contrast", severity=1, value_range=(1, 1)), ValueError, "low < high"),
        (dict(kind="contrast", severity=1, image_shape=(5, 5)), ValueError, "holds 25 values"),
    ],
)
def test_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        corrupt(np.zeros((2, 64)), **kwargs)


def test_non_square_flat_images_need_image_shape():
    with pytest.raises(ValueError, match="image_shape"):
        corrupt(np.zeros((2, 60)), "contrast", 1)


# ---------------------------------------------------------------------- report
def test_report_layout_and_clean_row(fitted):
    model, X, y = fitted
    report = dataset_shift_report(
        model, X, y, ["contrast", "rotate"], severities=(1, 3), random_state=0
    )
    assert list(report.columns) == [
        "corruption",
        "severity",
        "accuracy",
        "nll",
        "ece",
        "brier",
        "entropy",
        "epistemic",
    ]
    assert report[["corruption", "severity"]].values.tolist() == [
        ["clean", 0],
        ["contrast", 1],
        ["contrast", 3],
        ["rotate", 1],
        ["rotate", 3],
    ]
    proba = model.predict_proba(X)
    clean = report.iloc[0]
    assert clean.accuracy == model.score(X, y)
    assert clean.nll == metrics.categorical_nll(y, proba)
    assert clean.ece == metrics.expected_calibration_error(y, proba)
    assert clean.brier == metrics.brier_score(y, proba)
    assert clean.entropy == pytest.approx(entropy(proba).mean())
    assert np.isnan(report.epistemic).all()  # LogisticRegression has no decomposition
    # A corrupted row equals scoring the corrupted images directly (value range of X).
    shifted = corrupt(X, "rotate", 3, value_range=(X.min(), X.max()), random_state=_seed(0, 1))
    assert report.iloc[4].accuracy == model.score(shifted, y)


def _seed(random_state, position):
    """The seed the report gives its ``position``-th corruption."""
    rng = np.random.RandomState(random_state)
    return [int(rng.randint(np.iinfo(np.int32).max)) for _ in range(position + 1)][-1]


def test_report_is_reproducible(fitted):
    model, X, y = fitted
    first = dataset_shift_report(model, X[:200], y[:200], ["shot_noise"], random_state=1)
    second = dataset_shift_report(model, X[:200], y[:200], ["shot_noise"], random_state=1)
    assert first.equals(second)


def test_accuracy_falls_with_severity(fitted):
    # Over all corruptions, the mean accuracy at each severity is below that at the
    # previous one, severity 5 costs at least 10 points, and no corruption gains at
    # severity 5 more than sampling noise allows (797 test rows: sd of an accuracy
    # difference below 0.02).
    model, X, y = fitted
    report = dataset_shift_report(model, X, y, random_state=0)
    by_severity = report.groupby("severity").accuracy.mean()
    assert np.all(np.diff(by_severity.to_numpy()) < 0), by_severity
    clean = report.accuracy.iloc[0]
    assert by_severity[5] < clean - 0.10
    strongest = report[report.severity == 5].set_index("corruption").accuracy
    assert (strongest < clean + 0.04).all(), strongest


def test_report_uses_predict_uncertainty_through_a_pipeline(fitted):
    # A classifier exposing predict_uncertainty, at the end of a pipeline.
    model, X, y = fitted

    class WithUncertainty(LogisticRegression):
        def predict_uncertainty(self, X):
            from skbdl.uncertainty import ClassificationUncertainty

            proba = self.predict_proba(X)
            total = entropy(proba)
            return ClassificationUncertainty(proba, total, total * 0.75, total * 0.25)

    pipe = make_pipeline(FunctionTransformer(lambda Z: Z / 16), WithUncertainty(max_iter=3000))
    pipe.fit(X, y)
    report = dataset_shift_report(pipe, X[:100], y[:100], ["contrast"], severities=(5,))
    proba = pipe.predict_proba(X[:100])
    assert report.epistemic.iloc[0] == pytest.approx(0.25 * entropy(proba).mean())
    assert report.entropy.iloc[0] == pytest.approx(entropy(proba).mean())


def test_report_errors(fitted):
    model, X, y = fitted
    with pytest.raises(ValueError, match="Unknown corruptions"):
        dataset_shift_report(model, X, y, ["fog"])
    with pytest.raises(ValueError, match="labels"):
        dataset_shift_report(model, X, y[:-1])
    with pytest.raises(TypeError, match="predict_proba"):
        from sklearn.svm import LinearSVC

        dataset_shift_report(LinearSVC().fit(X, y), X, y)


# ------------------------------------------------------------------------ plot
def test_plot_dataset_shift(fitted):
    from matplotlib.figure import Figure

    from skbdl.plotting import plot_dataset_shift

    model, X, y = fitted
    report = dataset_shift_report(
        model, X[:150], y[:150], ["contrast", "rotate", "shot_noise"], random_state=0
    )
    ax = plot_dataset_shift({"a": report, "b": report}, "nll", ax=Figure().subplots())
    assert len(ax.patches) == 2 * 6  # a box per model and severity (0 to 5)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]
    assert ax.get_ylabel() == "negative log-likelihood (nats)"
    ax = plot_dataset_shift(report, kind="line", ax=Figure().subplots())
    mean_line = ax.lines[-1]
    assert mean_line.get_label() == "mean"
    np.testing.assert_allclose(
        mean_line.get_ydata(), report.groupby("severity").accuracy.mean().to_numpy()
    )
    assert len(ax.lines) == 3 + 1  # one per corruption, and the mean
    with pytest.raises(ValueError, match="metric"):
        plot_dataset_shift(report, "auroc")
    with pytest.raises(ValueError, match="kind"):
        plot_dataset_shift(report, kind="violin")


def test_plot_dataset_shift_skips_a_model_without_the_metric(fitted):
    from matplotlib.figure import Figure

    from skbdl.plotting import plot_dataset_shift

    model, X, y = fitted
    report = dataset_shift_report(model, X[:100], y[:100], ["contrast"], random_state=0)
    with_epistemic = report.assign(epistemic=0.1 * report.severity)
    ax = plot_dataset_shift(
        {"none": report, "some": with_epistemic}, "epistemic", kind="line", ax=Figure().subplots()
    )
    assert [line.get_label() for line in ax.lines] == ["some"]
    assert ax.lines[0].get_color() == "C1"  # the colour of the second model


def test_report_keeps_a_dataframe_a_dataframe(digits):
    import warnings

    pd = pytest.importorskip("pandas")
    X, y = digits
    frame = pd.DataFrame(X, columns=[f"pixel{i}" for i in range(64)])
    model = LogisticRegression(max_iter=3000).fit(frame[:1000], y[:1000])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "X does not have valid feature names"
        report = dataset_shift_report(
            model, frame[1000:], y[1000:], ["rotate"], severities=(2,), random_state=0
        )
    array_report = dataset_shift_report(
        LogisticRegression(max_iter=3000).fit(X[:1000], y[:1000]),
        X[1000:],
        y[1000:],
        ["rotate"],
        severities=(2,),
        random_state=0,
    )
    np.testing.assert_allclose(report.accuracy, array_report.accuracy)
