"""Every upstream OpenTAD config of the families built here is here, under upstream's path (issue #20).

The list below is upstream's ``configs/<family>/`` (github sming256/OpenTAD, HEAD of the mirror this project
reads) for the families whose detectors exist here: ActionFormer, TriDet, TemporalMaxer, DyFADet, CausalTAD,
VideoMambaSuite, BMN, G-TAD, TSI, ETAD, VSGN, AFSD and AdaTAD (upstream's re2tal and tadtr have no detector
here). The upstream configs that need a backbone this project lacks are listed apart with what is missing.

What is checked where:

* here: each listed path is among the configs that ``tests/test_configs.py`` loads and binds (so a listed
  config that does not load, or has a type or key that does not bind, fails there, once, by name); the
  configs that are left out are absent; and every other file of these families is one of this project's own
  (synthetic data, QLoRA variants, cached frames), so a config saved under a misspelled upstream name fails.
* ``tests/test_configs.py``: ``check_config(load_config(path))`` returns no error, for every config.

The values were compared with upstream's when the files were written: each config here, loaded with its
``_base_`` files, gives the same merged dict as upstream's file loaded in upstream's tree (docs/model_zoo.md).
"""
import os

from tests.test_configs import CONFIGS, ROOT

CONFIG_DIR = os.path.join(ROOT, "configs")

#: upstream's config files of the built families, relative to configs/ (README files left out)
UPSTREAM_CONFIGS = (
    # actionformer
    "actionformer/anet_tsp.py",
    "actionformer/charades_i3d_rgb.py",
    "actionformer/charades_videomae_l.py",
    "actionformer/ego4d_egovlp.py",
    "actionformer/ego4d_internvideo.py",
    "actionformer/ego4d_slowfast.py",
    "actionformer/epic_kitchens_slowfast_noun.py",
    "actionformer/epic_kitchens_slowfast_verb.py",
    "actionformer/fineaction_videomae_h.py",
    "actionformer/fineaction_videomaev2_g.py",
    "actionformer/hacs_slowfast.py",
    "actionformer/multithumos_i3d.py",
    "actionformer/multithumos_i3d_rgb.py",
    "actionformer/thumos_i3d.py",
    # tridet
    "tridet/anet_tsp.py",
    "tridet/epic_kitchens_slowfast_noun.py",
    "tridet/epic_kitchens_slowfast_verb.py",
    "tridet/hacs_slowfast.py",
    "tridet/thumos_i3d.py",
    # temporalmaxer
    "temporalmaxer/epic_kitchens_slowfast_noun.py",
    "temporalmaxer/epic_kitchens_slowfast_verb.py",
    "temporalmaxer/multithumos_i3d.py",
    "temporalmaxer/multithumos_i3d_rgb.py",
    "temporalmaxer/thumos_i3d.py",
    # dyfadet
    "dyfadet/anet_tsp.py",
    "dyfadet/fineaction_videomaev2_g.py",
    "dyfadet/hacs_slowfast.py",
    "dyfadet/thumos_videomaev2_g.py",
    # causaltad
    "causaltad/anet_internvideo2.py",
    "causaltad/anet_tsp.py",
    "causaltad/ego4d_internvideo1.py",
    "causaltad/ego4d_internvideo2.py",
    "causaltad/egovis_challenge_2024/ego4d_ensemble.py",
    "causaltad/egovis_challenge_2024/ego4d_ensemble_trainval.py",
    "causaltad/egovis_challenge_2024/ego4d_internvideo1_internvideo2.py",
    "causaltad/egovis_challenge_2024/ego4d_internvideo1_internvideo2_trainval.py",
    "causaltad/egovis_challenge_2024/ego4d_internvideo2_trainval.py",
    "causaltad/egovis_challenge_2024/epic_internvideo2_1b_noun.py",
    "causaltad/egovis_challenge_2024/epic_internvideo2_1b_noun_trainval.py",
    "causaltad/egovis_challenge_2024/epic_internvideo2_1b_verb.py",
    "causaltad/egovis_challenge_2024/epic_internvideo2_1b_verb_trainval.py",
    "causaltad/egovis_challenge_2024/epic_sounds_audioslowfast.py",
    "causaltad/egovis_challenge_2024/epic_sounds_audioslowfast_trainval.py",
    "causaltad/epic_slowfast_noun.py",
    "causaltad/epic_slowfast_verb.py",
    "causaltad/hacs_internvideo2.py",
    "causaltad/hacs_slowfast.py",
    "causaltad/thumos_i3d.py",
    "causaltad/thumos_internvideo2.py",
    # videomambasuite
    "videomambasuite/anet_internvideo6b.py",
    "videomambasuite/fineaction_internvideo1b.py",
    "videomambasuite/hacs_internvideo6b.py",
    "videomambasuite/multithumos_internvideo6b.py",
    "videomambasuite/thumos_internvideo6b.py",
    # bmn
    "bmn/anet_tsn.py",
    "bmn/anet_tsn_recall.py",
    "bmn/anet_tsp.py",
    "bmn/anet_tsp_recall.py",
    "bmn/hacs_slowfast_192.py",
    "bmn/thumos_i3d.py",
    "bmn/thumos_tsn.py",
    # gtad
    "gtad/anet_tsn.py",
    "gtad/anet_tsp.py",
    "gtad/thumos_i3d.py",
    "gtad/thumos_tsn.py",
    # tsi
    "tsi/anet_tsn.py",
    "tsi/anet_tsn_recall.py",
    "tsi/anet_tsp.py",
    "tsi/anet_tsp_recall.py",
    "tsi/thumos_i3d.py",
    "tsi/thumos_tsn.py",
    # etad
    "etad/anet_tsp.py",
    "etad/e2e_anet_tsp.py",
    "etad/thumos_i3d.py",
    # vsgn
    "vsgn/anet_tsp.py",
    "vsgn/anet_tsp_gcn.py",
    "vsgn/thumos_i3d.py",
    "vsgn/thumos_i3d_gcn.py",
    "vsgn/thumos_tsn.py",
    "vsgn/thumos_tsn_gcn.py",
    # afsd
    "afsd/anet_i3d_r50_768x96x96_lr1e-5_bs16.py",
    "afsd/anet_tsp.py",
    "afsd/thumos_i3d.py",
    "afsd/thumos_i3d_r50_256x96x96_lr1e-5.py",
    # adatad
    "adatad/anet/e2e_anet_videomae_b_192x4_160_adapter.py",
    "adatad/anet/e2e_anet_videomae_b_192x4_160_frozen.py",
    "adatad/anet/e2e_anet_videomae_b_192x4_160_fullft.py",
    "adatad/anet/e2e_anet_videomae_h_192x4_160_adapter.py",
    "adatad/anet/e2e_anet_videomae_h_192x4_160_frozen.py",
    "adatad/anet/e2e_anet_videomae_h_192x4_160_fullft.py",
    "adatad/anet/e2e_anet_videomae_l_192x4_160_adapter.py",
    "adatad/anet/e2e_anet_videomae_l_192x4_160_frozen.py",
    "adatad/anet/e2e_anet_videomae_l_192x4_160_fullft.py",
    "adatad/anet/e2e_anet_videomae_l_192x4_224_adapter_cls.py",
    "adatad/anet/e2e_anet_videomae_s_192x4_160_adapter.py",
    "adatad/anet/e2e_anet_videomae_s_192x4_160_frozen.py",
    "adatad/anet/e2e_anet_videomae_s_192x4_160_fullft.py",
    "adatad/anet/e2e_anet_videomaev2_g_192x4_160_adapter.py",
    "adatad/anet/e2e_anet_videomaev2_g_192x4_160_frozen.py",
    "adatad/anet/e2e_anet_videomaev2_g_192x4_160_fullft.py",
    "adatad/anet/e2e_anet_videomaev2_g_192x4_224_adapter.py",
    "adatad/anet/e2e_anet_videomaev2_g_192x4_224_adapter_internvideo.py",
    "adatad/anet/e2e_anet_videomaev2_g_192x4_224_adapter_internvideo2.py",
    "adatad/charades/e2e_charades_videomae_b_512x1_160_adapter.py",
    "adatad/charades/e2e_charades_videomae_h_512x1_160_adapter.py",
    "adatad/charades/e2e_charades_videomae_l_512x1_160_adapter.py",
    "adatad/charades/e2e_charades_videomae_s_512x1_160_adapter.py",
    "adatad/charades/e2e_charades_videomaev2_g_512x1_160_adapter.py",
    "adatad/ego4d/e2e_ego4d_internvideo_1800x4_192_adapter_lr4e-4.py",
    "adatad/epic/e2e_epic_videomae_l_ft_768x8_160_adapter_noun.py",
    "adatad/epic/e2e_epic_videomae_l_ft_768x8_160_adapter_verb.py",
    "adatad/multi_thumos/e2e_multithumos_videomae_b_768x1_160_adapter.py",
    "adatad/multi_thumos/e2e_multithumos_videomae_h_768x1_160_adapter.py",
    "adatad/multi_thumos/e2e_multithumos_videomae_l_768x1_160_adapter.py",
    "adatad/multi_thumos/e2e_multithumos_videomae_s_768x1_160_adapter.py",
    "adatad/multi_thumos/e2e_multithumos_videomaev2_g_768x1_160_adapter.py",
    "adatad/multi_thumos/e2e_multithumos_videomaev2_g_768x2_224_adapter.py",
    "adatad/thumos/e2e_thumos_videomae_b_768x1_160_adapter.py",
    "adatad/thumos/e2e_thumos_videomae_b_768x1_160_frozen.py",
    "adatad/thumos/e2e_thumos_videomae_b_768x1_160_fullft.py",
    "adatad/thumos/e2e_thumos_videomae_h_768x1_160_adapter.py",
    "adatad/thumos/e2e_thumos_videomae_h_768x1_160_frozen.py",
    "adatad/thumos/e2e_thumos_videomae_h_768x1_160_fullft.py",
    "adatad/thumos/e2e_thumos_videomae_l_768x1_160_adapter.py",
    "adatad/thumos/e2e_thumos_videomae_l_768x1_160_frozen.py",
    "adatad/thumos/e2e_thumos_videomae_l_768x1_160_fullft.py",
    "adatad/thumos/e2e_thumos_videomae_s_768x1_160_adapter.py",
    "adatad/thumos/e2e_thumos_videomae_s_768x1_160_frozen.py",
    "adatad/thumos/e2e_thumos_videomae_s_768x1_160_fullft.py",
    "adatad/thumos/e2e_thumos_videomae_s_768x1_160_side.py",
    "adatad/thumos/e2e_thumos_videomaev2_g_768x1_160_adapter.py",
    "adatad/thumos/e2e_thumos_videomaev2_g_768x1_160_frozen.py",
    "adatad/thumos/e2e_thumos_videomaev2_g_768x1_160_fullft.py",
    "adatad/thumos/e2e_thumos_videomaev2_g_768x2_224_adapter.py",
    "adatad/thumos/e2e_thumos_videomaev2_g_768x2_224_side_2e-4.py",
)

#: upstream configs that cannot bind here, with what is missing (docs/model_zoo.md lists them too)
NOT_HERE = {}  # none left: every upstream config of these families is here

FAMILIES = (
    "actionformer", "tridet", "temporalmaxer", "dyfadet", "causaltad", "videomambasuite",
    "bmn", "gtad", "tsi", "etad", "vsgn", "afsd", "adatad",
)

#: a config of these families that is not upstream's is this project's own and says so in its name
OWN_MARKERS = ("synthetic", "_qlora", "_cached")


def _relative(path: str) -> str:
    return os.path.relpath(path, CONFIG_DIR).replace(os.sep, "/")


def _family_files():
    """Config files of the built families, as test_configs.py finds them (``_base_`` folders left out)."""
    return {rel for rel in map(_relative, CONFIGS) if rel.split("/", 1)[0] in FAMILIES}


def test_list_is_well_formed():
    assert len(set(UPSTREAM_CONFIGS)) == len(UPSTREAM_CONFIGS), "a path is listed twice"
    assert not set(UPSTREAM_CONFIGS) & set(NOT_HERE)
    assert {p.split("/", 1)[0] for p in UPSTREAM_CONFIGS} == set(FAMILIES)
    assert all(p.endswith(".py") and "_base_" not in p for p in UPSTREAM_CONFIGS)


def test_every_upstream_config_is_here_and_checked_by_test_configs():
    here = _family_files()
    absent = [p for p in UPSTREAM_CONFIGS if p not in here]
    assert not absent, f"{len(absent)} upstream configs not under configs/ (or not loaded by test_configs.py): {absent}"


def test_configs_left_out_are_absent():
    """When one of them is written, it moves into UPSTREAM_CONFIGS (so that test_configs.py binds it)."""
    present = [p for p in NOT_HERE if os.path.exists(os.path.join(CONFIG_DIR, p))]
    assert not present, f"now present, move them to UPSTREAM_CONFIGS: {present}"


def test_every_other_config_is_this_projects_own():
    others = sorted(_family_files() - set(UPSTREAM_CONFIGS))
    unexpected = [p for p in others if not any(marker in p for marker in OWN_MARKERS)]
    assert not unexpected, (
        f"configs that are neither upstream's (by path) nor this project's own {OWN_MARKERS}: {unexpected}; "
        "a misspelled upstream name?"
    )
