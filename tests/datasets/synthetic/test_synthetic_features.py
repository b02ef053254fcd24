"""The feature recipe: shapes, coverage, class signal and boundary cues."""
import numpy as np

from opentad.datasets.synthetic import SyntheticSettings
from opentad.datasets.synthetic import features as features_module
from opentad.datasets.synthetic.features import class_prototypes, coverage, unit_vector, video_features
from opentad.datasets.synthetic.plan import plan_dataset


def test_coverage_matches_frame_counting():
    rng = np.random.default_rng(0)
    for _ in range(50):
        first = int(rng.integers(0, 40))
        stop = first + int(rng.integers(0, 30))
        rows = int(rng.integers(1, 20))
        expected = [sum(first <= f < stop for f in range(4 * t, 4 * t + 4)) / 4 for t in range(rows)]
        np.testing.assert_allclose(coverage(first, stop, rows), expected)


def test_prototypes_do_not_depend_on_the_number_of_classes():
    five, twenty = class_prototypes(0, 5, 64), class_prototypes(0, 20, 64)
    np.testing.assert_array_equal(five, twenty[:5])
    np.testing.assert_allclose(np.linalg.norm(twenty, axis=1), 1.0)
    assert not np.allclose(class_prototypes(1, 5, 64), five)


def _clean_settings(**kw):
    base = dict(num_train=8, num_test=0, feat_noise=0.0, max_distractors=0, ambiguous_prob=0.0, overlap_prob=0.0)
    return SyntheticSettings(**{**base, **kw})


def test_shape_dtype_and_determinism():
    settings = SyntheticSettings(num_train=3, num_test=1, feat_dim=32)
    for plan in plan_dataset(settings):
        feats = video_features(plan, settings)
        assert feats.dtype == np.float32 and feats.shape == (plan.num_frames // 4, 32)
        np.testing.assert_array_equal(feats, video_features(plan, settings))


def test_noise_free_features_name_the_class_inside_actions():
    settings = _clean_settings()
    protos = class_prototypes(settings.seed, settings.num_classes, settings.feat_dim)
    checked = 0
    for plan in plan_dataset(settings):
        feats = video_features(plan, settings)
        for seg in plan.segments:
            first, stop = seg.frame_range()
            # rows fully inside the action and > 0.75 s from both ends (boundary cues faded)
            rows = [t for t in range(first // 4 + 1, stop // 4) if 4 * t >= first + 23 and 4 * t + 4 <= stop - 23]
            for t in rows:
                assert np.argmax(protos @ feats[t]) == seg.label
                checked += 1
    assert checked > 50


def test_boundary_cues_peak_at_annotated_boundaries():
    settings = _clean_settings(num_train=6)
    start_v = unit_vector(settings.seed, 1, 1, settings.feat_dim)
    end_v = unit_vector(settings.seed, 1, 2, settings.feat_dim)
    for plan in plan_dataset(settings):
        feats = video_features(plan, settings).astype(np.float64)
        centres = (np.arange(len(feats)) * 4 + 2) / 30
        for seg in plan.segments:
            for vector, at in ((start_v, seg.start_cs / 100), (end_v, seg.end_cs / 100)):
                near = np.abs(centres - at) < 1.0
                if near.sum() < 10:  # boundary too close to the video edge to look both ways
                    continue
                peak = centres[near][np.argmax(feats[near] @ vector)]
                assert abs(peak - at) <= 0.2, (plan.name, at, peak)


def test_background_differs_from_actions():
    settings = _clean_settings(num_train=6)
    protos = class_prototypes(settings.seed, settings.num_classes, settings.feat_dim)
    for plan in plan_dataset(settings):
        feats = video_features(plan, settings)
        inside = np.zeros(len(feats), bool)
        for seg in plan.segments:
            first, stop = seg.frame_range()
            inside[first // 4 : (stop + 3) // 4] = True
        if (~inside).any():
            assert np.abs(feats[~inside] @ protos.T).max() < 0.5  # no class signal on background


def test_float64_parts_are_the_same_bits_on_another_cpu(tmp_path, other_cpu):
    """Prototypes (norms) and boundary cues (exp) before the float32 cast, computed in a process
    where NumPy has no SIMD extensions and OpenBLAS other kernels: bit-identical. (BLAS norms and
    NumPy's AVX-512 exp differ in the last bits between such setups.)"""
    code = (
        "import numpy as np\n"
        "from opentad.datasets.synthetic import features\n"
        f"np.save({str(tmp_path / 'protos.npy')!r}, features.class_prototypes(3, 20, 64))\n"
        "times = (np.arange(400) * 4 + 2) / 30\n"
        f"np.save({str(tmp_path / 'bumps.npy')!r}, np.stack([features._bump(times, a / 7) for a in range(60)]))\n"
    )
    other_cpu(code)
    protos = features_module.class_prototypes(3, 20, 64)
    times = (np.arange(400) * 4 + 2) / 30
    bumps = np.stack([features_module._bump(times, a / 7) for a in range(60)])
    assert np.array_equal(np.load(tmp_path / "protos.npy"), protos)
    assert np.array_equal(np.load(tmp_path / "bumps.npy"), bumps)
    # and they are what they claim to be. Unit vectors: this check's own float64 sum of 64 squares
    # is within 64 eps, the normalisation a few eps. Gaussian cues: the same exponent, two exp
    # implementations within about an ulp each; 0 where the cue is below 1e-30 (3 s away).
    eps = np.finfo(np.float64).eps
    np.testing.assert_allclose(np.sqrt((protos**2).sum(1)), 1.0, rtol=4 * 64 * eps)
    expected = np.exp(-((times[None] - np.arange(60)[:, None] / 7) ** 2) / (2 * 0.25**2))
    np.testing.assert_allclose(bumps, np.where(expected < 1e-30, 0.0, expected), rtol=4 * eps, atol=1e-30)
