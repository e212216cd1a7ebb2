"""Labelled photo sets for bench/attributes.py, each built from what can be known for certain.

- Gender: LFW people whose first name is unambiguously female or male in English, Spanish,
  Portuguese, Italian or Russian usage (the lists below). Names used for both sexes (Kim, Lee,
  Robin, Pat, Jan, Jamie, Kelly, Terry, Leslie, Jean, Andrea, Nicola, Sasha, Chris, Alex, ...) and
  titles (Prince, Princess, Queen) are left out, so every label follows from the name alone.
- Age: 60 of LFW's most photographed people, all public figures whose birth year is on record.
  LFW's photos are Yahoo News pictures of 2002-2004, so a photo's age is taken as 2003 minus the
  birth year: within about a year and a half of the truth, plus the odd older archive photo.
- Expression: 135 LFW faces (every sixth photo of the gender set, shown as a contact sheet,
  grimaces, shouts and occluded mouths left out) and 42 faces-smoke portraits, labelled by eye
  as not smiling, smiling or laughing (``data/expression_labels.tsv``). The LFW faces fitted the
  smile calibration in workers/attributes.py; the faces-smoke ones are held out.
- Liveness attacks: genuine photos turned into simulated recaptures (a screen's moiré and colour
  cast, a print's lost detail and washed-out contrast, a photo held inside another photo).
  Simulations only: real printed or replayed attacks were not available.
"""
from __future__ import annotations

import random
from pathlib import Path

import cv2
import numpy as np

DATA = Path(__file__).resolve().parent / "data"

FEMALE_NAMES = frozenset(
    """Mary Jennifer Maria Laura Jane Michelle Barbara Patricia Nancy Lisa Elizabeth Rachel Martha
    Linda Kate Sarah Natalie Jessica Janet Ellen Diana Carla Amy Tina Suzanne Sandra Ruth Paula Monica
    Melissa Katie Karen Elena Donna Cindy Christine Catherine Anne Ana Alexandra Tatiana Sue Sharon
    Marina Margaret Julie Judy Joan Heather Eva Debra Colleen Claire Cheryl Carol Anna Angela Amanda
    Alicia Vanessa Teresa Tara Susan Sheila Sally Nicole Natalia Naomi Laurie Kristin Kathy Kathryn
    Jacqueline Gloria Gina Emily Cristina Claudia Charlotte Ann""".split()
)
MALE_NAMES = frozenset(
    """John Michael David James Paul Robert Richard Mike Jim Bill Tom Mark Peter Steve Bob William Jose
    Brian Joe George Thomas Carlos Martin Larry Frank Scott Gary Eric Tim Stephen Jason Daniel Charles
    Roger Kevin Jerry Rick Dan Andy Juan Joseph Edward Dave Ben Anthony Ray Keith Billy Andrew Roberto
    Phil Patrick Matt Mario Tony Luis Donald Don Brandon Brad Alan Tommy Steven Ronald Jorge Jonathan
    Jeff Jack Dennis Barry Pedro Miguel Kurt Jimmy Javier Ian Greg Fernando Christopher Sean Roy Ralph
    Nick Kenneth Jeffrey Fred Craig Bruce Alejandro Adam Todd Ted Raul Mikhail Marc Ken Johnny Howard
    Eddie Doug Chuck Bernard Antonio Aaron Vladimir""".split()
)
PHOTO_YEAR = 2003
BIRTH_YEARS = {
    "George_W_Bush": 1946, "Colin_Powell": 1937, "Tony_Blair": 1953, "Donald_Rumsfeld": 1932,
    "Gerhard_Schroeder": 1944, "Ariel_Sharon": 1928, "Hugo_Chavez": 1954, "Junichiro_Koizumi": 1942,
    "Jean_Chretien": 1934, "John_Ashcroft": 1942, "Serena_Williams": 1981, "Jacques_Chirac": 1932,
    "Vladimir_Putin": 1952, "Luiz_Inacio_Lula_da_Silva": 1945, "Gloria_Macapagal_Arroyo": 1947,
    "Jennifer_Capriati": 1976, "Arnold_Schwarzenegger": 1947, "Lleyton_Hewitt": 1981, "Laura_Bush": 1946,
    "Hans_Blix": 1928, "Alejandro_Toledo": 1946, "Nestor_Kirchner": 1950, "Andre_Agassi": 1970,
    "Alvaro_Uribe": 1952, "Tom_Ridge": 1945, "Silvio_Berlusconi": 1936, "Megawati_Sukarnoputri": 1947,
    "Vicente_Fox": 1942, "Roh_Moo-hyun": 1946, "Kofi_Annan": 1938, "John_Negroponte": 1939,
    "David_Beckham": 1975, "Recep_Tayyip_Erdogan": 1954, "Guillermo_Coria": 1982, "Mahmoud_Abbas": 1935,
    "Bill_Clinton": 1946, "Juan_Carlos_Ferrero": 1980, "Jack_Straw": 1946, "Ricardo_Lagos": 1938,
    "Rudolph_Giuliani": 1944, "Gray_Davis": 1942, "Tom_Daschle": 1947, "Winona_Ryder": 1971,
    "Jeremy_Greenstock": 1943, "Atal_Bihari_Vajpayee": 1924, "Tiger_Woods": 1975, "Saddam_Hussein": 1937,
    "Jose_Maria_Aznar": 1953, "Pete_Sampras": 1971, "Naomi_Watts": 1968, "Lindsay_Davenport": 1976,
    "Hamid_Karzai": 1957, "George_Robertson": 1946, "Jennifer_Lopez": 1969, "Jennifer_Aniston": 1969,
    "Carlos_Menem": 1930, "Amelie_Mauresmo": 1979, "Paul_Bremer": 1941, "Michael_Bloomberg": 1942,
    "Jiang_Zemin": 1926,
}  # fmt: skip


def gender_people(lfw: Path, seed: int) -> list[tuple[str, bool]]:
    """(LFW person, is male): every person with a female first name and as many randomly chosen
    ones with a male first name, so that accuracy weighs both sexes alike."""
    people = [line.split("\t")[0] for line in (lfw / "identities.tsv").read_text().splitlines()[1:]]
    female = [p for p in people if p.split("_")[0] in FEMALE_NAMES]
    male = [p for p in people if p.split("_")[0] in MALE_NAMES]
    chosen = sorted(random.Random(seed).sample(male, min(len(male), len(female))))
    return [(p, False) for p in female] + [(p, True) for p in chosen]


def expression_labels() -> list[tuple[str, str]]:
    """(path under ../shared/data, "none" | "smile" | "laugh")."""
    lines = (DATA / "expression_labels.tsv").read_text().splitlines()[1:]
    return [tuple(line.split("\t")) for line in lines if line]


def screen_recapture(image: np.ndarray) -> np.ndarray:
    """A photo of a screen: a moiré of the pixel grid beating with the camera's, and a blue cast."""
    height, width = image.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width]
    moire = 0.85 + 0.15 * np.sin(2 * np.pi * (xs * 0.31 + ys * 0.07))
    out = image.astype(np.float32) * moire[..., None] * np.array([1.08, 1.0, 0.92], np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)


def print_recapture(image: np.ndarray) -> np.ndarray:
    """A photo of a print: detail lost to the printer, contrast washed out by paper, sensor noise."""
    height, width = image.shape[:2]
    small = cv2.resize(image, None, fx=0.35, fy=0.35, interpolation=cv2.INTER_AREA)
    soft = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    washed = cv2.addWeighted(soft, 0.8, np.full_like(soft, 235), 0.2, 0)
    noise = np.random.default_rng(0).normal(0, 6, washed.shape)
    return np.clip(washed + noise, 0, 255).astype(np.uint8)


def photo_in_photo(image: np.ndarray) -> np.ndarray:
    """The photo shrunk to 60 %, framed by a white border, held before a grey background."""
    height, width = image.shape[:2]
    canvas = np.full_like(image, 60)
    inner = cv2.resize(image, (int(width * 0.6), int(height * 0.6)), interpolation=cv2.INTER_AREA)
    top, left = int(height * 0.2), int(width * 0.2)
    canvas[top : top + inner.shape[0], left : left + inner.shape[1]] = inner
    cv2.rectangle(canvas, (left - 3, top - 3), (left + inner.shape[1] + 3, top + inner.shape[0] + 3), (250, 250, 250), 6)
    return canvas


ATTACKS = {"screen": screen_recapture, "print": print_recapture, "photo_in_photo": photo_in_photo}
