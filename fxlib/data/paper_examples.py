"""The paper's own listening-test stimuli: the published files, their download, and the examples in a folder.

Beside the listening test of the paper, the authors published its audio examples on the paper's
project page: the public GitHub repository ``mchijmma/DeepAFx``, folder ``audio/``, listed in its
``LISTENING_TEST.md`` (and its ``README.md``, the page itself). Per task folder and example
``<id>`` the page shows these conditions (:data:`CONDITIONS`):

==================  ============================================  ==============================
condition           in the listening test                         file (amp: ``distortion/``)
==================  ============================================  ==============================
``input``           the unprocessed input, the low anchor         ``full_model_61_<id>_x.mp3``
``mid_anchor``      the mid anchor                                ``full_model_61_<id>_x_mid.mp3``
``target``          the target: high anchor and hidden reference  ``full_model_61_<id>_y.mp3``
``deepafx``         the paper's DeepAFx output                    ``full_model_61_<id>_z.mp3``
``cafx``            amp: the authors' earlier end-to-end network  ``CAFx_<id>.mp3``
                    (CAFx, Applied Sciences 2020)
``online_service``  mastering: a commercial online mastering      ``full_model_92_<id>_x_landr.mp3``
                    service
==================  ============================================  ==============================

Breath files (``nonspeech/``) are ``full_model_57_<id>_*``, mastering files (``mastering/``)
``full_model_92_<id>_*``, whose mid anchor is ``..._x_mid_peak.mp3``. :data:`FILES` lists all 160
files the page links: amp 10 examples x 5 conditions, breath 10 x 4, mastering 14 x 5, all mono
MP3 at 44.1 kHz. Each
is fetched from ``<base>/<task folder>/<file name>``, by default :data:`BASE_URL`, the raw files
of the repository at the commit that holds them (so their bytes cannot change under a recorded
checksum). Files whose SHA-256 is known (the 80 of a local copy at hand when this table was
written) are verified against it; for the others the digest is recorded at their first download
in ``<root>/checksums.json`` and verified from then on (with a warning), as the other data
downloaders do with archives that publish none.

The files are under the Adobe Research License (non-commercial research, teaching and testing):
they are fetched at run time into a data folder, never shipped with this package. A local copy
(``source``, e.g. ``../shared/paper-listening-test`` beside the project) is used instead of the
network for every file it holds, checked against the same checksums.

:func:`examples` lists the examples found in a folder of this layout; :func:`load_example`
reads one with all its conditions aligned to the target.
"""
from __future__ import annotations

import argparse
import json
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from ..atomic import atomic_output, write_json
from .audio import ChecksumError, DataError, DataNotFoundError, load_audio, resample
from .download import download as fetch, file_digest
from .stats import align, set_statistics

REPOSITORY = "mchijmma/DeepAFx"
COMMIT = "5a2b189096cd3e9b6c8f350f2f9b704f45c604dd"
BASE_URL = f"https://raw.githubusercontent.com/{REPOSITORY}/{COMMIT}/audio"
PAGE = "https://mchijmma.github.io/DeepAFx/"
SAMPLE_RATE = 44100
CHECKSUMS = "checksums.json"
MAX_LAG_SECONDS = 0.05

#: The task folders of the page, by fxlib task name.
FOLDERS = {"amp": "distortion", "breath": "nonspeech", "mastering": "mastering"}
#: The example ids of each task, in the page's order.
EXAMPLE_IDS: dict[str, tuple[int, ...]] = {
    "amp": (101, 99, 84, 69, 44, 35, 31, 6, 5, 2),
    "breath": tuple(range(10)),
    "mastering": tuple(range(14)),
}
#: The conditions of the listening test, and what each is.
CONDITIONS = {
    "input": "the unprocessed input (the test's low anchor)",
    "mid_anchor": "the mid anchor",
    "target": "the target (the high anchor and hidden reference)",
    "deepafx": "the paper's DeepAFx output",
    "cafx": "CAFx, the authors' earlier end-to-end network (amp)",
    "online_service": "a commercial online mastering service (mastering)",
}
#: File name patterns per task and condition (``{id}``: the example id).
FILE_NAMES: dict[str, dict[str, str]] = {
    "amp": {"input": "full_model_61_{id}_x.mp3", "mid_anchor": "full_model_61_{id}_x_mid.mp3",
            "target": "full_model_61_{id}_y.mp3", "deepafx": "full_model_61_{id}_z.mp3", "cafx": "CAFx_{id}.mp3"},
    "breath": {"input": "full_model_57_{id}_x.mp3", "mid_anchor": "full_model_57_{id}_x_mid.mp3",
               "target": "full_model_57_{id}_y.mp3", "deepafx": "full_model_57_{id}_z.mp3"},
    "mastering": {"input": "full_model_92_{id}_x.mp3", "mid_anchor": "full_model_92_{id}_x_mid_peak.mp3",
                  "target": "full_model_92_{id}_y.mp3", "deepafx": "full_model_92_{id}_z.mp3",
                  "online_service": "full_model_92_{id}_x_landr.mp3"},
}
#: SHA-256 of the files of which a copy was at hand, by ``<task folder>/<file name>``.
SHA256: dict[str, str] = {
    "distortion/CAFx_2.mp3": "4e330f4db15ff3392af4232155db738cb0f402aa75fe81e43d0962966f2c24fd",
    "distortion/CAFx_35.mp3": "98783ebabbc4e475f8802be2cc5bc706ea57658d234d72e54ce41e1e90dcc887",
    "distortion/CAFx_6.mp3": "0bd263e05472ac95023eca5dfc311398195d10475dd7e23680aa5540d26a1509",
    "distortion/CAFx_69.mp3": "5e5e3b4e468191db6e99ba381e529b9384e7739faccd687048a48d487accf6b2",
    "distortion/CAFx_99.mp3": "358567f4469870a85d65f6e59cc2bad8dce380a50469f4b7791d84cff8397e70",
    "distortion/full_model_61_2_x.mp3": "854a06284264db1ec2489b8135fb2bb9889cdb0f66b3d87b35d842029bd874a2",
    "distortion/full_model_61_2_x_mid.mp3": "ad798d1b2a8c108521c4c54c1f8648d571cc2af98b1dc470bc5b932462eac2e0",
    "distortion/full_model_61_2_y.mp3": "abd9a63f2048d4207f8f9709b4d955e4f31cfb5aed20eb69dd9611727948de6f",
    "distortion/full_model_61_2_z.mp3": "b64f7cc87eecc0f16d3f3f6001ef08328c61645f198e171ecb565b67427ec29b",
    "distortion/full_model_61_35_x.mp3": "e381dab31525d3141ae7e1dc04af587b584ed8c8f81e5f3ed3c862413068ed7a",
    "distortion/full_model_61_35_x_mid.mp3": "ada0d6c7309817697ebab415ed9ce24e22a64d2f999a73665a2a31ba7ba0d296",
    "distortion/full_model_61_35_y.mp3": "1a4cd41b21465af67b2aa071c7f4d016eaa8d94149056748c5e0c94d9f2bce4d",
    "distortion/full_model_61_35_z.mp3": "a49d1a3d9fe3307979457394fa60a367fc166d3512708d7b9c3d6cbb3e4b883f",
    "distortion/full_model_61_69_x.mp3": "6f2192987e9a219f747c28dfb2082021e5a0375b35b7f2b2fffddf7e881653ae",
    "distortion/full_model_61_69_x_mid.mp3": "276659d561e9884f697d4982530ee53c58e78bcb39e47345868f7f6f7d1d5f84",
    "distortion/full_model_61_69_y.mp3": "63b33c8e79dc2f1810b11f065554a3fdc7b6014a7b8df6a5baa9877ccbfe7240",
    "distortion/full_model_61_69_z.mp3": "54ec641a41b3ce7762e1cef31d6f3639cca2b1e54ad20c93599846275745c036",
    "distortion/full_model_61_6_x.mp3": "1c0eca2d7ee725d76e905f9b8ff7856bdc76c501df2473d8dcb74df395be95cf",
    "distortion/full_model_61_6_x_mid.mp3": "be0e64853013504712e6a2c8f98dcdfbd5a3fa588669e3389c6d72d8e3588be2",
    "distortion/full_model_61_6_y.mp3": "cbcb5b1531a2621644239af01fa5e3f851553097ebad9cbdb52b44bd96221a8a",
    "distortion/full_model_61_6_z.mp3": "da627fefbecd6a5224e75f8bfacd21e13ec32e091e73db31af830d01ccb8e2c8",
    "distortion/full_model_61_99_x.mp3": "e6c3db95df3008646fe1e997c74bb5e8b7470fa30e11e20cefd5bc5813e5500d",
    "distortion/full_model_61_99_x_mid.mp3": "eed9b4495adf1cfd5430ea6586c7b07d15420e235282614a95d415d242ef5d52",
    "distortion/full_model_61_99_y.mp3": "2d6b983c845cfb73e96eff4ecdbd6aac2d01874faf9c779d14208a5d1a275a64",
    "distortion/full_model_61_99_z.mp3": "f340f205897e4fb0841dfff286ab91876cf565832714a57e4570fc6cbe30d8f7",
    "nonspeech/full_model_57_0_x.mp3": "33758f49858dcfab278eaa37a5f96cf313ee7496b44c7d209dc162608876cfc7",
    "nonspeech/full_model_57_0_x_mid.mp3": "6db32942772cc300e3b578287e24771e96df12af3432487a4ff729d9bb3f6ead",
    "nonspeech/full_model_57_0_y.mp3": "4bb20733115d941a38d891341885a94c4393843decb596e275402278de55ce5f",
    "nonspeech/full_model_57_0_z.mp3": "62bd20c64c4b3811fc8149209be6008cb06b3a7bde98fc3a35eaa710dd582cec",
    "nonspeech/full_model_57_2_x.mp3": "0c03b90b757c4f21000877b782e6e5ab860341f29e501f4635b3d6a49edb0e80",
    "nonspeech/full_model_57_2_x_mid.mp3": "004a479cf2c96ee0638086845cb2201bc806b0dbc56557284519be0978274b4f",
    "nonspeech/full_model_57_2_y.mp3": "36953b808999c1d7f606b222b9160d54b77e4e904cc48d3ad1fea9492bf91c4d",
    "nonspeech/full_model_57_2_z.mp3": "27400fccb31412f902d97c61e8887f40616aac8dd59d21637a61df1454d2400d",
    "nonspeech/full_model_57_4_x.mp3": "28e16a824fed081bd742b54265915dcb541c00ae856ad2b3715fe9b2ad49c425",
    "nonspeech/full_model_57_4_x_mid.mp3": "2be6ee36144e9b49e15c0e7b8684554e3adc0ae256a0ad1833ca5eab900dd1e5",
    "nonspeech/full_model_57_4_y.mp3": "0613682257d948e5451923f66586c7da036ca45c6af917db39c1699a393818e2",
    "nonspeech/full_model_57_4_z.mp3": "ed53bf75487b31dbd6e4fe0b17f250015dd1a5b69e314bedb211ef3ccf39a11a",
    "nonspeech/full_model_57_6_x.mp3": "1cae140c0645523cb287425b2993bbbfaef948aeee7dd35ae07bae1949845007",
    "nonspeech/full_model_57_6_x_mid.mp3": "800d3f78c9780fd1acd3365f378804b8411fb3b4d826b791507173b8a39ea54b",
    "nonspeech/full_model_57_6_y.mp3": "e8b198ded2f5cb21441435b59f054b9f588a7c15f1c3c472f596889c2f3b0d7b",
    "nonspeech/full_model_57_6_z.mp3": "20ca975504b27a9eb7a535543a81096e188a66fe41e714dac73188700352f4c7",
    "nonspeech/full_model_57_8_x.mp3": "6c29aed8bdb7b2334ea8e2b722b8cb82cdf7d4f67f73a2d88de8993cb744349a",
    "nonspeech/full_model_57_8_x_mid.mp3": "f4a958404cbddb26483d9dfa7099f61ce5caafa95019ecc0501449ff6b9993e6",
    "nonspeech/full_model_57_8_y.mp3": "fcee3bc0c404f40eb9944a5a10ff223aed7cf40bca742e7f68d6a4a21ad915f9",
    "nonspeech/full_model_57_8_z.mp3": "28c9883869ad28c7efa5eae51ea6937cba6f4a2643779409ac602b5297d5eaf9",
    "mastering/full_model_92_0_x.mp3": "206deb8184492382f56d384af8d10cae4c6183d122dc1297be2054377d4bc747",
    "mastering/full_model_92_0_x_landr.mp3": "01c294fc487fdeb53fdcf562d1eeafdebcf2eac0c46727335b1e5811b8141b64",
    "mastering/full_model_92_0_x_mid_peak.mp3": "17385722880ba2f5c797e13d0c478d4e8dbc303397382c1a4853f9fbc27654c9",
    "mastering/full_model_92_0_y.mp3": "4ad8bc4a657b7f7c1602df1396f2565c3aabc4800071cfe9d74eefe30f23ce98",
    "mastering/full_model_92_0_z.mp3": "5e3efeb997704e5ea007d4cfbb382b5234bba1446d839f49174546fd9346ce8c",
    "mastering/full_model_92_10_x.mp3": "74da86e7d4b0883c0548edb9fd60babf1270e24a3797297e9daf0d5328f81c33",
    "mastering/full_model_92_10_x_landr.mp3": "c2471270f0b10cc3802a45e32c9de843eb9a59dbc5d662bf805d55cc5d016f01",
    "mastering/full_model_92_10_x_mid_peak.mp3": "33edd477d234001cda2f28715dbf23b86f361e0bf96f9e9ecb4e4b8f89c4924a",
    "mastering/full_model_92_10_y.mp3": "6a36e42393f39e719bb834dbc64ae67541739776d0abd20d456a68da3b43ca99",
    "mastering/full_model_92_10_z.mp3": "c4e9a6ce79f09a64647b1fff012b554cbdc8f0db5a7f325e61d24b8243572d31",
    "mastering/full_model_92_12_x.mp3": "7b875dc8f5feaa49bc55b5330b1d79561351d480bc5602618f4f264120f999de",
    "mastering/full_model_92_12_x_landr.mp3": "37d0227a4c113af1a58eca803dde4c769680aa74dd787978c46812ef5034bbf1",
    "mastering/full_model_92_12_x_mid_peak.mp3": "ad82619be5ea5163d33adbd3ddb266deb85420a9c95d3a9a6d97445024ee3741",
    "mastering/full_model_92_12_y.mp3": "8a39d3ae4d8d83ea48ac7be6c2bdaf9e19b38c6e2bb122998c653c32360f1459",
    "mastering/full_model_92_12_z.mp3": "9d2065f0f4d4604490a8e6455e68949b31284450f2c2493be70c61ce6fca5eea",
    "mastering/full_model_92_2_x.mp3": "e668b980ff432491f394a287c61bd2bcfa9624650e781b54a830503e93272c78",
    "mastering/full_model_92_2_x_landr.mp3": "2009030a5bfb14d6ebe1cd7d3c2f94f519b341eda0bc7a7b5b99ab1e45ad738f",
    "mastering/full_model_92_2_x_mid_peak.mp3": "ce6b7b756b5b775464404df8df71743d5ee5c2d6d0c15a6567b70205d520c22e",
    "mastering/full_model_92_2_y.mp3": "3b3b18d12a2ce6fd4f275ee0bb6e3008866ba58dd5e1c5188897cca911109b37",
    "mastering/full_model_92_2_z.mp3": "9277124cd9b19f164d8a694cd364d7c6929002267fbba0abaf2b4cb52f1d4bc1",
    "mastering/full_model_92_4_x.mp3": "4c968a351c1efb82a99701985a8277378701c3c8f88ef83f8a904fbbcf1b167b",
    "mastering/full_model_92_4_x_landr.mp3": "8ad8ebb3218221be52b9a8e2ae7b45749854a463a322dc06777ea437f0cc6d47",
    "mastering/full_model_92_4_x_mid_peak.mp3": "5ae8f13a0b6c5f31b49e6ac6eb7ae0544a0c40cfb1a88f0013f38b0b022341ec",
    "mastering/full_model_92_4_y.mp3": "062585b8aef82658c9da6f479ecffaadca3b2feca46e78614d1e02917eeb5c0b",
    "mastering/full_model_92_4_z.mp3": "c9866efdc511e68f5a9592b1ac4af491aac60d0d9144217cb7771d6a70c2127a",
    "mastering/full_model_92_6_x.mp3": "d3323ed119c5577a763ffa137bd09c6a8411a5a7ee87417670bd3e61f8061504",
    "mastering/full_model_92_6_x_landr.mp3": "142003a6d1c80fa7ff4f088fe5e9d2ce52d83e8871d581e505f473c1bc801e30",
    "mastering/full_model_92_6_x_mid_peak.mp3": "59a83891cb739c6d6e3af634f68b243ba360b0dc98b51355d1815a5d7b7b9a0c",
    "mastering/full_model_92_6_y.mp3": "b0dfed6e46de7a9ae5804229cd37dff93a3e8175fafc9cc01011387077937f0b",
    "mastering/full_model_92_6_z.mp3": "7e0702bb295cf26adc8ec9de6d08b39f0b5173651f2da8470ed0b1dfc40f6bdb",
    "mastering/full_model_92_8_x.mp3": "bab76b5933c4202621e22bc136b14ba4ba1f2f0b7519d732b581c99c1bbde8db",
    "mastering/full_model_92_8_x_landr.mp3": "d8871b736a714ea4e1a085cf1ef43d5a066930b39bd05352196e337338f4c8ad",
    "mastering/full_model_92_8_x_mid_peak.mp3": "24b9dff47cb3591619615fc4a3c613d223ebce5d7c6e0600e87404d7a20c9df5",
    "mastering/full_model_92_8_y.mp3": "d86ee4578128e0ffffedde243d0866d4f8eb692a46ae899257fed6a7200efa2c",
    "mastering/full_model_92_8_z.mp3": "100acfc225fd43bda5848f7993165c0a746daa6017405773f3092a433b5267cb",
}

Log = Callable[[str], None]


@dataclass(frozen=True)
class PaperFile:
    """One published file of the listening test.

    Attributes:
        task: ``"amp"``, ``"breath"`` or ``"mastering"``; example: its example id;
        condition: a key of :data:`CONDITIONS`; folder: the task folder of the page;
        name: the file name; sha256: its hex digest when known, else None.
    """

    task: str
    example: int
    condition: str
    folder: str
    name: str
    sha256: str | None = None

    @property
    def path(self) -> str:
        """``<task folder>/<file name>``, as on the page and in a local copy."""
        return f"{self.folder}/{self.name}"


def _table() -> tuple[PaperFile, ...]:
    files = []
    for task, ids in EXAMPLE_IDS.items():
        for example in ids:
            for condition, pattern in FILE_NAMES[task].items():
                name = pattern.format(id=example)
                files.append(PaperFile(task, example, condition, FOLDERS[task], name,
                                       SHA256.get(f"{FOLDERS[task]}/{name}")))
    return tuple(files)


#: Every file of the listening test as the project page lists it (160).
FILES: tuple[PaperFile, ...] = _table()


@dataclass(frozen=True)
class Example:
    """One example of a task found in a folder: its id and the files of its conditions.

    Attributes:
        task: ``"amp"``, ``"breath"`` or ``"mastering"``; id: the example id;
        files: ``{condition: path}`` of the conditions present, in :data:`CONDITIONS` order.
    """

    task: str
    id: int
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Whether every condition the page has for this task is present."""
        return set(self.files) == set(FILE_NAMES[self.task])

    def to_dict(self) -> dict:
        """As plain data: ``{"task", "id", "files": {condition: path string}}``."""
        return {"task": self.task, "id": self.id, "files": {k: str(v) for k, v in self.files.items()}}


def _check_tasks(tasks: Iterable[str] | None) -> list[str]:
    tasks = list(FOLDERS if tasks is None else tasks)
    unknown = [t for t in tasks if t not in FOLDERS]
    if unknown:
        raise DataError(f"unknown task(s) {unknown}; the paper's examples are of {', '.join(FOLDERS)}")
    return tasks


def examples(folder: str | Path, tasks: Iterable[str] | None = None) -> list[Example]:
    """The examples present in a folder laid out as the page (``<folder>/<task folder>/<file name>``).

    Args:
        folder: e.g. ``data/paper-examples`` or ``../shared/paper-listening-test``.
        tasks: only these tasks (default all).

    Returns:
        The examples with at least one file present, by task (in :data:`FOLDERS` order) and id
        (in the page's order); see :attr:`Example.complete`.

    Raises:
        DataNotFoundError: ``folder`` does not exist.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataNotFoundError(f"folder {folder} of the paper's examples does not exist; fetch them with "
                                f"`fxlib data paper-examples download --root {folder}`")
    found = []
    for task in _check_tasks(tasks):
        for example in EXAMPLE_IDS[task]:
            files = {f.condition: folder / f.path for f in FILES
                     if f.task == task and f.example == example and (folder / f.path).is_file()}
            if files:
                found.append(Example(task, example, files))
    return found


@dataclass(frozen=True)
class LoadedExample:
    """An example's audio, every condition aligned to the target and cut to one length.

    Attributes:
        task, id: as :class:`Example`; sample_rate: in Hz.
        audio: ``{condition: float32 (1, T)}``, one ``T`` for all.
        lags: ``{condition: samples}`` at the files' rate (44.1 kHz) by which each condition was
            shifted to match the target (:func:`fxlib.data.stats.align`; positive: it came late).
    """

    task: str
    id: int
    sample_rate: int
    audio: dict[str, np.ndarray]
    lags: dict[str, int]


def load_example(example: Example, sample_rate: int | None = None,
                 max_lag_seconds: float = MAX_LAG_SECONDS) -> LoadedExample:
    """Read an example's files (mono), align each condition to the target, and cut all to their common span.

    The conditions come with small delays (the paper's DeepAFx output lags its target by up to
    about 12 ms; some inputs lead it) and slightly different lengths (CAFx's files run 0.37 s
    longer, one mid anchor 52 ms shorter). Each condition is shifted by its lag of largest
    cross-correlation with the target (within ``max_lag_seconds``), then every condition,
    the target included, is cut to the span where all of them have audio, so no zeros are
    padded in. Resampling, when asked, comes after.

    Args:
        example: from :func:`examples`; it must hold the target.
        sample_rate: in Hz; None keeps the files' rate.
        max_lag_seconds: the largest lag searched.

    Raises:
        DataError: the example has no target.
    """
    if "target" not in example.files:
        raise DataError(f"{example.task} example {example.id} has no target file "
                        f"({FILE_NAMES[example.task]['target'].format(id=example.id)}); cannot align it")
    target, rate = load_audio(example.files["target"], channels=1)
    max_lag = round(max_lag_seconds * rate)
    shifted, lags, spans = {}, {}, []
    for condition, path in example.files.items():
        audio, file_rate = load_audio(path, channels=1)
        if file_rate != rate:
            raise DataError(f"{path}: {file_rate} Hz, but the target {example.files['target']} is {rate} Hz")
        shifted[condition], lags[condition] = (target, 0) if condition == "target" else align(audio, target, max_lag)
        lag = lags[condition]
        spans.append((max(0, -lag), min(target.shape[1], audio.shape[1] - lag)))
    start, stop = max(s for s, _ in spans), min(e for _, e in spans)
    if stop <= start:
        raise DataError(f"{example.task} example {example.id}: its conditions share no common span after alignment")
    audio = {c: np.ascontiguousarray(a[:, start:stop]) for c, a in shifted.items()}
    if sample_rate is not None and int(sample_rate) != rate:
        audio = {c: resample(a, rate, int(sample_rate)) for c, a in audio.items()}
        rate = int(sample_rate)
    return LoadedExample(example.task, example.id, rate, audio, lags)


def statistics(folder: str | Path, task: str, sample_rate: float) -> dict[str, Any]:
    """:func:`fxlib.data.stats.set_statistics` of the paper's own ``task`` examples (``_x`` input, ``_y`` target).

    Used once per builder, to write its ``PAPER_STATISTICS``: a builder never reads the paper's audio.

    Raises:
        DataNotFoundError: no example of ``task`` in ``folder``.
    """
    found = [e for e in examples(folder, [task]) if {"input", "target"} <= set(e.files)]
    if not found:
        raise DataNotFoundError(f"{folder}: no {task} examples with an input and a target")
    loaded = [load_example(e, int(sample_rate)).audio for e in found]
    return set_statistics(((a["input"], a["target"]) for a in loaded), sample_rate)


# ---------------------------------------------------------------------------- download

def _read_recorded(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    try:
        recorded = json.loads(path.read_text())["sha256"]
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path}: not a checksum record of the paper's examples ({e}); remove it to record anew") from e
    if not isinstance(recorded, dict):
        raise DataError(f"{path}: \"sha256\" must map file paths to digests")
    return recorded


def _copy_verified(source: Path, dest: Path, sha256: str | None) -> bool:
    """Copy ``source`` onto ``dest`` atomically, only if the copy has ``sha256`` (when given).

    Returns False when ``dest`` already held the file (with that digest, when given).
    """
    if dest.is_file() and (sha256 is None or file_digest(dest) == sha256):
        return False
    with atomic_output(dest) as tmp:
        shutil.copyfile(source, tmp)
        if sha256 is not None and (got := file_digest(tmp)) != sha256:
            raise ChecksumError(f"{source}: sha256 expected {sha256}, got {got}; the local copy differs from the "
                                "published file, nothing was copied")
    return True


def download(root: str | Path, source: str | Path | None = None, base_url: str = BASE_URL,
             tasks: Iterable[str] | None = None, files: Iterable[PaperFile] = FILES,
             offline: bool = False, log: Log = print) -> list[Path]:
    """Fetch the listening test's files into ``<root>/<task folder>/<file name>``.

    Each file comes from ``source`` when that folder holds it (copied, then checked), else from
    ``<base_url>/<task folder>/<file name>`` (:func:`fxlib.data.download.download`: resumed
    when cut, checked, atomic). A file already in ``root`` with the right checksum is kept.
    Files without a known checksum have theirs recorded in ``<root>/checksums.json`` at their
    first download (with a warning) and checked against it from then on.

    Args:
        root: the destination folder (it may be ``source`` itself: then the files are only checked).
        source: a local copy in the same layout, or None for the network only.
        base_url: where the page's ``audio/`` folder is (default :data:`BASE_URL`).
        tasks: only these tasks' files (default all).
        files: the table to fetch (default :data:`FILES`; tests pass their own).
        offline: never use the network: files that neither ``root`` nor ``source`` holds are
            skipped (and counted in the summary), e.g. to copy only a local part of the set.
        log: receives one line per file fetched or copied and a summary.

    Returns:
        The paths of the files present afterwards, in table order.

    Raises:
        DownloadError: a file could not be fetched (what finished is kept: run again to resume).
        ChecksumError: a downloaded or local file differs from its checksum (it is not kept).
    """
    root = Path(root)
    wanted = set(_check_tasks(tasks))
    record_path = root / CHECKSUMS
    recorded = _read_recorded(record_path)
    new: list[str] = []
    paths = []
    skipped = 0
    try:
        for f in files:
            if f.task not in wanted:
                continue
            dest = root / f.path
            expected = f.sha256 or recorded.get(f.path)
            local = Path(source) / f.path if source is not None else None
            if local is not None and local.is_file():
                if local.resolve() == dest.resolve():
                    if expected is not None and (got := file_digest(dest)) != expected:
                        raise ChecksumError(f"{dest}: sha256 expected {expected}, got {got}")
                elif _copy_verified(local, dest, expected):
                    log(f"copied {local}")
            elif offline and not dest.is_file():
                skipped += 1
                continue
            else:
                existed = dest.is_file()
                fetch(f"{base_url.rstrip('/')}/{f.path}", dest, sha256=expected)
                if not existed:
                    log(f"downloaded {f.path}")
            if expected is None:
                recorded[f.path] = file_digest(dest)
                new.append(f.path)
            paths.append(dest)
    finally:
        if new:
            write_json(record_path, {"about": "sha256 of the paper's example files recorded at their first download "
                                              "(no published checksum); later downloads are checked against it",
                                     "sha256": dict(sorted(recorded.items()))})
    if new:
        warnings.warn(f"{len(new)} file(s) have no published checksum; their sha256 is recorded in {record_path} "
                      "and checked from now on", stacklevel=2)
    log(f"{root}: {len(paths)} files of the paper's listening test ({len(new)} checksum(s) recorded"
        + (f"; {skipped} not held by {source} skipped, offline)" if skipped else ")"))
    return paths


def main(argv: list[str] | None, root: str) -> int:
    """``fxlib data paper-examples {download,list} ...``: ``root`` is the default of ``--root``."""
    parser = argparse.ArgumentParser(prog="fxlib data paper-examples", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    download_p = sub.add_parser("download", help="fetch the listening test's files (160 MP3s, about 4 MB)")
    list_p = sub.add_parser("list", help="list the examples present and their conditions")
    for p in (download_p, list_p):
        p.add_argument("--root", default=root, help=f"folder of the files (default {root})")
        p.add_argument("--tasks", nargs="+", choices=list(FOLDERS), help="only these tasks (default all)")
    download_p.add_argument("--source", help="a local copy in the same layout, used instead of the network "
                                             "for the files it holds (e.g. ../shared/paper-listening-test)")
    download_p.add_argument("--base-url", default=BASE_URL,
                            help=f"where the page's audio/ folder is (default {BASE_URL})")
    download_p.add_argument("--offline", action="store_true",
                            help="never use the network: take only what --source holds")
    args = parser.parse_args(argv)
    if args.action == "download":
        download(args.root, args.source, args.base_url, args.tasks, offline=args.offline)
        return 0
    for example in examples(args.root, args.tasks):
        missing = sorted(set(FILE_NAMES[example.task]) - set(example.files))
        print(f"{example.task:9} {example.id:4}  {', '.join(example.files)}"
              + (f"  (missing: {', '.join(missing)})" if missing else ""))
    return 0
