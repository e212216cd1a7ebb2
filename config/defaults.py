"""Every facesvc setting with its default and why.

Each field can be overridden by an environment variable ``FACESVC_<NAME>`` (upper case), nested
fields with ``__`` (``FACESVC_LIMITS__DETECT_IMAGE_BYTES``). Entry points call
``load_settings()`` once and pass the result down; nothing below reads ``os.environ``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

MB = 1024 * 1024


class Limits(BaseModel, frozen=True):
    """Request limits. The encoded-size limits are Baidu's (spec §1.1.4)."""

    # Base64 text of one detect image must be smaller than 2 MB (§1.1.4).
    detect_image_bytes: int = 2 * MB
    # All images of one match request together: 20 MB (§1.1.4).
    match_total_bytes: int = 20 * MB
    # identify, verify and the face library: 10 MB (§1.1.4).
    image_bytes: int = 10 * MB
    # Whole request body; a little above the largest image limit so form overhead fits.
    max_body_bytes: int = 21 * MB
    # Decoded pixel count above which an image is refused as a pixel bomb (a 30000x30000 header
    # would otherwise allocate 2.7 GB). 60 MP covers every phone and DSLR photo.
    max_image_pixels: int = 60_000_000
    # PNG and BMP cannot be decoded scaled down, so they are refused sooner: a 60 MP PNG cost
    # ~1.8 s and ~440 MB to decode. Photos come as JPEG; 25 MP still covers a 5000x5000 scan.
    max_lossless_pixels: int = 25_000_000
    # A progressive JPEG is one pass over every block per scan; encoders write 1 (baseline) to
    # about a dozen. Far more is an attack (16,000 empty scans held a thread for 66 s).
    max_jpeg_scans: int = 100
    # JPEGs whose longest side is at least twice this are decoded at 1/2, 1/4 or 1/8 (libjpeg's
    # DCT scaling skips most of the decoding) while the longest side stays >= this: the
    # detector sees at most detect_size pixels, and a face keeps far more than the embedders'
    # 112x112 crop.
    full_decode_side: int = 2048
    # detect's max_face_num is capped at 10 (issue 2; Baidu's v2 detect returns at most 10).
    max_faces: int = 10
    # user_info is limited to 256 bytes (§1.7.2).
    user_info_bytes: int = 256


class Quotas(BaseModel, frozen=True):
    """Request quotas (spec §1.15 codes 4, 17, 18, 19), counted in Redis so that every process
    and node shares them. 0 switches a quota off; all are off by default because a self-hosted
    service has no tariff to enforce, and an unset quota costs no Redis round trip.
    """

    # Requests per second of one app (18 "Open api qps request limit reached").
    app_qps: int = Field(0, ge=0)
    # Requests per UTC day of one app (17 "Open api daily request limit reached").
    app_daily: int = Field(0, ge=0)
    # Requests ever made by one app, e.g. a trial key (19 "Open api total request limit reached").
    app_total: int = Field(0, ge=0)
    # Requests per second of all apps together, to shed load before the cluster saturates
    # (4 "Open api request limit reached", Baidu's cluster limit).
    cluster_qps: int = Field(0, ge=0)


class Models(BaseModel, frozen=True):
    """Inference settings."""

    # "fused": SFace + fr_feature, mean cosine (best LFW accuracy). "fast": fr_feature alone.
    profile: Literal["fused", "fast"] = "fused"
    # Longest side the detector sees; larger photos are downscaled and boxes mapped back.
    detect_size: int = 640
    # YuNet score threshold. 0.6 keeps every LFW face while rejecting background clutter.
    detect_threshold: float = 0.6
    # One intra-op thread per request, parallel across requests, was fastest on 2 cores.
    intra_op_threads: int = 1
    # "int8": both embedders from their static int8 graphs in ONNX Runtime (workers/quantize.py),
    # SFace 2.3x and fr_feature 1.8x faster a face than fp32, LFW accuracy unchanged, TAR at FAR
    # 1e-4 3 pairs of 3,000 lower (README, "int8 inference"); "fp32": every embedder in fp32
    # (OpenCV DNN). A GPU always runs fp32. Both give embeddings of one model id.
    precision: Literal["int8", "fp32"] = "int8"
    # "auto" uses CUDA when onnxruntime-gpu sees a device, else CPU.
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # Micro-batching across concurrent requests (workers/batcher.py): the detector, landmark
    # and embedder calls of up to batch_size photos or faces run as one, the first waiting at
    # most batch_wait_ms for company. Empty: 1 (off). On CPU a batch cost what its rows cost
    # alone and the wait only added latency; on an H200 the calls that batched several requests
    # held them 4-6 s, where single ones took 25 ms (README, "GPU").
    batch_size: Optional[int] = Field(None, ge=1)
    batch_wait_ms: float = Field(2.0, ge=0, le=100)


class Index(BaseModel, frozen=True):
    """Vector search (index/). Figures from bench/search.py on 2 cores."""

    # Faces from which a group switches from exact search to fast-scan PQ with exact re-ranking:
    # a flat scan of 20,000 640-d faces takes about what PQ takes at 300,000 (~2 ms).
    # At least 1,000: the PQ codebooks (16 centroids per pair of dimensions) are trained on the
    # group's own faces, and FAISS fails below 16 and warns below 624.
    approx_from: int = Field(20_000, ge=1000)
    # Seconds between index snapshots under <data_dir>/index (written only when something
    # changed, and at shutdown): a restart replays just the changes made since the newest one.
    snapshot_seconds: float = Field(300.0, gt=0)
    # FAISS OpenMP threads of every thread that searches (index/group_index.use_threads).
    # Requests already run in parallel (threads, workers); on a busy 2-core machine OpenMP's
    # spinning threads made a flat search of 20k faces 10x slower.
    threads: int = Field(1, ge=1)
    # MB of indexes a node holds, shared evenly by its workers; 0: every group, always (and
    # snapshots on disk). Otherwise a group is loaded on first use, from the index stored in
    # Redis (large groups) or its faces, and the least recently used are evicted (index/lazy.py);
    # a group costs ~2.6 KB a face below approx_from, ~200 B from it (bench/cold_load.py).
    memory_mb: float = Field(0.0, ge=0)


class FaceTokens(BaseModel, frozen=True):
    """v3's face tokens of detected faces (detect, search, match...), reusable as
    image_type=FACE_TOKEN. A registered face's token lasts as long as the face."""

    # Baidu's tokens of detected faces last 60 minutes (v3 spec §2.6).
    ttl_seconds: int = Field(3600, ge=1)
    # Detected faces kept per app; beyond it the oldest go first. Each holds an embedding
    # (~2.6 KB with the fused profile's 640 floats), so 20,000 cost an app ~55 MB of Redis.
    max_per_app: int = Field(20_000, ge=1)


class UrlImages(BaseModel, frozen=True):
    """v3's image_type=URL: facesvc downloads the image itself. Off unless ``allow`` names
    where from (service/api/url_images.py): "*" for any host whose addresses are all public,
    host names ("images.example.com", "*.example.com") and networks ("10.0.0.0/8"); a private,
    loopback or link-local address is fetched only when a network entry covers it."""

    # Comma-separated; empty: URL images are refused (222204).
    allow: str = ""
    # Seconds for the whole download, redirects included.
    timeout_seconds: float = Field(10.0, gt=0)
    # Largest image downloaded: Baidu's limit of a base64 image (2 MB encoded ~ 1.5 MB).
    max_bytes: int = Field(2 * MB, ge=1)
    # Redirects followed, each checked like the first URL.
    max_redirects: int = Field(3, ge=0)


class Enrolment(BaseModel, frozen=True):
    """The enrolment gate: faceset/user/add and update (v2 and v3) refuse a photo whose largest
    face would identify badly, saying which measure failed (v2 216615, v3 223114-223118;
    service/library/enrolment.py). Off by default: Baidu registers any face it finds.

    Limits from `python -m bench.enrolment_gate` (bench/results/enrolment_gate.json; LFW's
    identification protocol, 1,680 gallery photos, and degraded copies of 500 of them): each
    refuses at most 1 % of LFW's gallery and none of the 60 faces-smoke portraits, and sits
    where degraded enrolment photos start to identify worse. Together they refuse 1.2 % of the
    gallery (20 people, who are missed 40 % of the time against 2.8 % for the rest); FNIR at
    FPIR 1 % of the people accepted falls from 3.03 to 2.73 %, at score 80 from 1.74 to 1.51 %.
    """

    enabled: bool = False
    # Face box width in decoded pixels (location.width). Faces scaled to 40 px identified as
    # well as the originals; to 32 px FNIR rose from 4.9 to 6.3 %, to 20 px to 22 %. 36 refuses
    # 97 % of the 32 px copies and 0.4 % of the 40 px ones (LFW's own faces are all >= 74 px).
    min_face_px: int = Field(36, ge=0)
    # workers/quality.blur_effect of the face crop (0 sharp, 1 blurred). 0.6 refuses 0.24 % of
    # LFW's gallery (missed 21 % of the time), all copies blurred by 4 % of the face's width
    # (FNIR 71 %) and 58 % of those blurred by 2 % (FNIR 8 %); 0.55 would refuse 1.2 %.
    max_blur: float = Field(0.6, ge=0, le=1)
    # Degrees either way. |yaw| > 40 refuses 0.65 % of LFW's gallery, missed 35 % of the time
    # (2.9 % for the rest); 35 would refuse 1.4 %. Pitch (to 30 degrees) and roll (which
    # alignment undoes) did not predict misses: off.
    max_yaw: float = Field(40.0, ge=0, le=90)
    max_pitch: float = Field(90.0, ge=0, le=90)
    max_roll: float = Field(180.0, ge=0, le=180)
    # Mean luma of the face box (Baidu's own advice: above 40). Refuses no LFW or faces-smoke
    # photo, all copies at exposure x0.15 (FNIR 16 %) and 64 % at x0.3 (FNIR 6.7 %).
    min_illumination: int = Field(40, ge=0, le=255)
    max_illumination: int = Field(255, ge=0, le=255)
    # Refuse a face the photo's edge cuts: 0.3 % of LFW's gallery, each a bystander at the
    # crop's border whose person was never found.
    whole_face: bool = True


class Settings(BaseSettings):
    """facesvc configuration."""

    model_config = SettingsConfigDict(
        env_prefix="FACESVC_", env_nested_delimiter="__", frozen=True, extra="ignore"
    )

    # Where the embedded Redis keeps its AOF, where models are cached. Relative to the
    # working directory so that a checkout is self-contained.
    data_dir: Path = Path("var")
    # Model cache; empty means <data_dir>/models.
    models_dir: Optional[Path] = None
    # A Redis URL (redis://host:port/db). Empty: facesvc starts its own redis-server.
    redis_url: Optional[str] = None
    # fsync policy of the embedded Redis AOF: "always" makes every acknowledged write survive
    # even a power loss, at ~1 ms per write (negligible beside inference).
    redis_appendfsync: Literal["always", "everysec"] = "always"
    # Replicas that must hold a face library write before it is answered (Redis WAIT), so that
    # a failover loses no acknowledged write. Empty: 1 while the write's primary has a replica
    # connected, else 0 (a lone server; a promoted primary until its replicas are back).
    redis_wait_replicas: Optional[int] = Field(None, ge=0)
    # How long a write waits for them; fewer in time: the write is answered 216300 (it may
    # still survive: the caller retries, and a repeated photo is refused as existing).
    redis_wait_ms: int = Field(1000, ge=1)
    # gunicorn bind address. Loopback by default: expose it deliberately.
    bind: str = "127.0.0.1:8080"
    # gunicorn worker processes; each loads its own model sessions (~150 MB).
    workers: int = 2
    # Threads per worker: requests overlap I/O and ONNX runtime releases the GIL.
    threads: int = 2
    # Seconds a request may take before gunicorn restarts the worker (request deadline).
    timeout: int = 60
    # Requests are read in full by each worker's event loop before a thread sees them
    # (service/ops/buffering_worker.py): a client gets this long from connecting to send its
    # headers, and request_read_timeout for the whole request (21 MB in 60 s: 350 KB/s), or it
    # is dropped, having held no thread.
    request_header_timeout: float = Field(10.0, gt=0)
    request_read_timeout: float = Field(60.0, gt=0)
    # Connections a worker reads requests from at once (each costs a socket and what it sent).
    max_reading_connections: int = Field(1000, ge=1)
    # Access tokens live 30 days, as Baidu's do (§1.2.1).
    token_ttl: int = 2_592_000
    # Longest window a bce-auth-v1 signature is accepted in, whatever expiration it claims: the
    # SDKs sign for 1800 s (C# 1200 s), so a captured signature is a pass for at most this long.
    signature_max_seconds: int = Field(1800, ge=60)
    # Failed token grants allowed per minute from one client address; more are refused unchecked
    # (429 slow_down), each costing a PBKDF2. 0: no limit. Behind a proxy every client shares
    # the proxy's address: raise it there (or 0) so that one client's typos do not stop others.
    max_failed_grants: int = Field(10, ge=0)
    # 64 hex digits sealing the stored secret keys (needed to check bce-auth-v1 signatures).
    # Empty: <data_dir>/master.key, created on first use. Nodes sharing a Redis must share it.
    master_key: Optional[str] = None
    # "text" reads well in a terminal; "json" (one object a line, with log_id, app, endpoint,
    # error_code, latency_ms as keys) is what a log collector indexes without parsing.
    log_format: Literal["text", "json"] = "text"
    # /metrics with a series per (app, group): every tenant's app ids, group names and sizes to
    # whoever reaches the port. Off: totals only. Turn on behind a network that only the
    # operator's scraper reaches.
    metrics_per_group: bool = False
    limits: Limits = Field(default_factory=Limits)
    quotas: Quotas = Field(default_factory=Quotas)
    models: Models = Field(default_factory=Models)
    index: Index = Field(default_factory=Index)
    face_tokens: FaceTokens = Field(default_factory=FaceTokens)
    url_images: UrlImages = Field(default_factory=UrlImages)
    enrolment: Enrolment = Field(default_factory=Enrolment)

    @property
    def model_cache(self) -> Path:
        return self.models_dir or self.data_dir / "models"

    @property
    def snapshot_dir(self) -> Path:
        """Index snapshots, shared by every worker on this machine (index/snapshot.py)."""
        return self.data_dir / "index"

    @property
    def metrics_dir(self) -> Path:
        """Where gunicorn workers share their Prometheus samples; emptied by each ``serve``."""
        return self.data_dir / "metrics"


def load_settings(**overrides: object) -> Settings:
    """Read the environment once; keyword overrides win (tests, CLI flags)."""
    return Settings(**overrides)
