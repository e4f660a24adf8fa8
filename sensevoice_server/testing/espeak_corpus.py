"""Speech whose words are known: sentences spoken by espeak-ng, for the trained test model.

Why: no hub is reachable here, so the only model this project can run with trained weights is
one it trains itself, and the only labelled speech it can get is speech it synthesises.
espeak-ng speaks English and Mandarin (it reads Hanzi) with many voice variants; each clip is
a random sentence from a fixed vocabulary, spoken with a voice, speed and pitch drawn from a
seeded generator, then put in a little noise, silence and level change, so the VAD and the
features see something like a recording rather than a clean synthetic edge.

Training and held-out clips differ in their sentences (a held-out sentence is never a training
sentence) and in their voices (`HELD_OUT_VOICES` are never trained on): held-out scores are for
sentences and voices the model has not heard.
"""

from __future__ import annotations

import io
import random
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from math import gcd
from multiprocessing import Pool
from typing import Literal

import numpy as np
import soundfile
from scipy.signal import resample_poly

Language = Literal["en", "zh"]
SAMPLE_RATE = 16_000
ESPEAK_RATE = 22_050

EN_TEXT = """
a about after again air all also always and animal answer any apple are around ask at away
back bag ball bank be because bed before begin behind best better big bird black blue boat
body book both box boy bread bring brother brown but buy by call came can car carry cat chair
change child city clean close cloud cold come cook could country cup cut dance dark day dear
did dinner do doctor dog door down draw dream drink drive dry each early earth eat egg end
evening every eye face fall family far farm fast father find fire first fish five floor flower
fly food foot for forest four friend from fruit full game garden girl give glass go good green
ground group grow hair half hand happy hard has hat have he head hear heart help her here high
hill him his hold home horse hot house how hundred i ice idea in inside into is it job jump
just keep kind king kitchen know lake large last late laugh learn leave left leg letter light
like line listen little live long look love low make man many map market may me meet milk
minute money moon morning mother mountain move much music my name near never new next nice
night nine no north not now number of off office often old on one only open or orange other
our out over paper park people pen picture place plan play please point poor put question
quick quiet rain read ready red remember rest rice right river road rock room run said same
school sea second see sell send seven she ship shoe shop short show sing sister sit six sky
sleep slow small snow so soft some song soon sound south speak spring stand star start station
stay still stone stop story street strong student summer sun sweet table take talk tall tea
teacher ten that the their them then there they thing think this three through time to today
together tomorrow too town train tree true two under up us very village visit voice wait walk
wall want warm was watch water way we weather week well went west what when where white who
why wind window winter with woman wood word work world write year yellow yes you young
"""

ZH_TEXT = """
我们 你们 他们 今天 明天 昨天 早上 晚上 中午 现在 时间 天气 很好 不错 喜欢 知道 觉得 可以
已经 还是 因为 所以 但是 如果 一起 朋友 老师 学生 学校 医生 家里 妈妈 爸爸 孩子 哥哥 姐姐
弟弟 妹妹 公园 商店 北京 上海 中国 城市 地方 东西 问题 工作 学习 休息 开始 结束 回家 出去
吃饭 喝水 喝茶 米饭 面条 水果 苹果 电话 电脑 手机 电影 音乐 唱歌 跳舞 看书 写字 说话 听说
下雨 下雪 太阳 月亮 天空 春天 夏天 秋天 冬天 高兴 快乐 漂亮 重要 简单 容易 认真 马上 一下
一点 非常 特别 真的 这个 那个 什么 怎么 为什么 哪里 这里 那里 多少 几个 一个 两个 三个 四个
五个 先生 小姐 大家 自己 火车 飞机 汽车 地铁 银行 医院 饭店 房间 桌子 椅子 衣服 颜色 红色
白色 黑色 绿色 生日 周末 假期 旅行 运动 跑步 游泳 准备 帮助 希望 需要 记得 忘记 打开 关上
"""
EN_WORDS = EN_TEXT.split()
ZH_WORDS = ZH_TEXT.split()

# espeak-ng voice + variant; a variant changes pitch contour, formants and breathiness.
TRAIN_VOICES: dict[Language, list[str]] = {
    "en": ["en-us", "en-gb", "en-us+f3", "en-us+m2", "en-gb+f2", "en-us+m4", "en-gb-x-rp+m1",
           "en-us+f4", "en-gb-scotland+m5", "en-us-nyc+f1", "en-029+m6", "en-gb+klatt"],
    "zh": ["cmn", "cmn+f3", "cmn+m2", "cmn+f2", "cmn+m4", "cmn+f4", "cmn+m1", "cmn+m5",
           "cmn+f1", "cmn+klatt", "cmn+m6", "cmn+f5"],
}  # fmt: skip
HELD_OUT_VOICES: dict[Language, list[str]] = {
    "en": ["en-us+m3", "en-gb+f5"],
    "zh": ["cmn+m3", "cmn+m7"],
}
SPEEDS = (130, 195)  # words per minute, espeak-ng's -s
PITCHES = (30, 70)  # espeak-ng's -p, 0-99
HELD_OUT_SPEEDS = (145, 175)
# two English clips for each Mandarin one: 415 words spoken with many accents need more
# examples than 160 Hanzi words
TRAINING_LANGUAGES: tuple[Language, ...] = ("en", "en", "zh")


@dataclass(frozen=True)
class Utterance:
    """One clip to synthesise: its words, and how they are spoken."""

    language: Language
    words: tuple[str, ...]
    voice: str
    speed: int
    pitch: int
    seed: int

    @property
    def text(self) -> str:
        """What is spoken (and the reference transcript): words with spaces in English,
        characters run together in Mandarin."""
        return ("" if self.language == "zh" else " ").join(self.words)


def sentence(language: Language, rng: random.Random) -> tuple[str, ...]:
    vocabulary = EN_WORDS if language == "en" else ZH_WORDS
    count = rng.randint(3, 8) if language == "en" else rng.randint(2, 6)
    return tuple(rng.choice(vocabulary) for _ in range(count))


def utterances(
    count: int,
    seed: int,
    *,
    held_out: bool,
    avoid: Iterable[tuple[str, ...]] = (),
    languages: Sequence[Language] = ("en", "zh"),
) -> list[Utterance]:
    """`count` clips, seeded, their languages in turn from `languages`; held-out ones use the
    held-out voices and speeds and never repeat a sentence in `avoid` (the training
    sentences)."""
    rng = random.Random(seed)
    seen = set(avoid)
    out: list[Utterance] = []
    while len(out) < count:
        language = languages[len(out) % len(languages)]
        words = sentence(language, rng)
        if words in seen:
            continue
        seen.add(words)
        voices = (HELD_OUT_VOICES if held_out else TRAIN_VOICES)[language]
        speeds = HELD_OUT_SPEEDS if held_out else SPEEDS
        out.append(
            Utterance(language, words, rng.choice(voices), rng.randint(*speeds),
                      rng.randint(*PITCHES), rng.randrange(2**31))
        )  # fmt: skip
    return out


def speak(utterance: Utterance) -> np.ndarray:
    """espeak-ng's speech for one utterance, at 16 kHz mono float32, with its surroundings,
    on 16-bit steps: the samples a WAV file of it holds, so that a path fed the array and
    one fed the file hear the same thing (one step's difference can change a word that a
    small model is unsure of)."""
    return on_16_bit_steps(surround(espeak(utterance), np.random.default_rng(utterance.seed)))


def on_16_bit_steps(audio: np.ndarray) -> np.ndarray:
    steps = np.clip(np.round(audio.astype(np.float64) * 32768), -32768, 32767)
    return (steps / 32768).astype(np.float32)


def espeak(utterance: Utterance) -> np.ndarray:
    """espeak-ng's speech alone, at 16 kHz mono float32."""
    command = ["espeak-ng", "-v", utterance.voice, "-s", str(utterance.speed),
               "-p", str(utterance.pitch), "--stdout", utterance.text]  # fmt: skip
    wav = subprocess.run(command, capture_output=True, check=True).stdout
    audio, rate = soundfile.read(io.BytesIO(wav), dtype="float32")
    common = gcd(SAMPLE_RATE, rate)
    resampled: np.ndarray = resample_poly(audio, SAMPLE_RATE // common, rate // common)
    return resampled.astype(np.float32)


def surround(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Silence before and after (0.1-0.6 s), a level between -26 and -6 dBFS peak, and a low
    noise floor (40-60 dB under the speech): what a microphone gives, roughly."""
    before, after = (int(rng.uniform(0.1, 0.6) * SAMPLE_RATE) for _ in range(2))
    padded = np.concatenate([np.zeros(before), audio, np.zeros(after)]).astype(np.float32)
    peak = float(np.abs(padded).max()) or 1.0
    padded *= 10 ** (rng.uniform(-26, -6) / 20) / peak
    noise_db = rng.uniform(40, 60)
    noise = rng.standard_normal(len(padded)).astype(np.float32)
    padded += noise * float(np.sqrt(np.mean(audio**2)) or 1e-3) * 10 ** (-noise_db / 20)
    return np.clip(padded, -1, 1).astype(np.float32)


def speak_all(batch: list[Utterance], processes: int = 2) -> list[np.ndarray]:
    """Synthesise in `processes` workers (espeak-ng is single-threaded)."""
    with Pool(processes) as pool:
        return pool.map(speak, batch, chunksize=16)


TimedWord = tuple[str, float, float]  # a word and where it is, in seconds


def spaced_words(utterance: Utterance) -> tuple[np.ndarray, list[TimedWord]]:
    """The utterance's words spoken one at a time and joined with known pauses (0.15-0.4 s),
    with where each word's sound starts and ends: the truth word timestamps are scored
    against. espeak-ng's own silence around a word is trimmed (below 2 % of its peak)."""
    rng = np.random.default_rng(utterance.seed)
    pieces: list[np.ndarray] = [np.zeros(int(0.3 * SAMPLE_RATE), np.float32)]
    truth: list[TimedWord] = []
    position = len(pieces[0])
    for word in utterance.words:
        sound = trimmed(espeak(replace(utterance, words=(word,))))
        truth.append((word, position / SAMPLE_RATE, (position + len(sound)) / SAMPLE_RATE))
        gap = np.zeros(int(rng.uniform(0.15, 0.4) * SAMPLE_RATE), np.float32)
        pieces += [sound, gap]
        position += len(sound) + len(gap)
    audio = np.concatenate(pieces)
    audio *= 0.3 / (float(np.abs(audio).max()) or 1.0)
    return on_16_bit_steps(audio), truth


def trimmed(audio: np.ndarray, floor: float = 0.02) -> np.ndarray:
    loud = np.flatnonzero(np.abs(audio) > floor * float(np.abs(audio).max() or 1.0))
    return audio[loud[0] : loud[-1] + 1] if len(loud) else audio
