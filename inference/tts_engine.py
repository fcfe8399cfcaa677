"""Batched streaming text-to-speech with text arriving word by word.

Each slot runs moshi's TTS state machine (`moshi.models.tts.StateMachine`) on its own word queue.
A slot only steps when it has enough words queued for the model's lookahead (or the text is
finished), so it never mistakes "the LLM has not produced the next word yet" for "end of text".
Voice conditioning is per slot: the slot's cross-attention keys/values and summed conditions are
overwritten in the batched streaming state when a session takes the slot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inference import protocol
from inference.engine import Session, SlotEngine
from inference.metrics import Metrics
from inference.profiles import Profile, checkpoint_info, load_lm, load_mimi
from inference.text import EntryBuilder
from inference.voices import UnknownVoice, load_voice_file, resolve_voice, voice_suffix

log = logging.getLogger(__name__)

FRAME_RATE = 12.5
# moshi's TTSModel drops the first two decoded frames (a click); we do the same.
DROPPED_FRAMES = 2
MAX_STEPS = 30000


@dataclass
class _Pending:
    word: str
    step: int


@dataclass
class TtsSlotState:
    machine_state: Any
    builder: EntryBuilder
    voice: torch.Tensor
    eos: bool = False
    steps: int = 0
    frames_out: int = 0
    words_seen: int = 0
    pending: _Pending | None = None
    first_text_time: float | None = None
    conditioned: bool = False
    texts: list[dict[str, Any]] = field(default_factory=list)


class TtsSession(Session):
    def __init__(self, slot: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(slot, loop)
        self.state: TtsSlotState | None = None
        self.voice: torch.Tensor | None = None

    def push_text(self, text: str) -> None:
        self.inbox.append(("text", text))

    def push_voice(self, emb: torch.Tensor) -> None:
        self.inbox.append(("voice", emb))

    def push_eos(self) -> None:
        self.inbox.append(("eos", None))


class TtsEngine(SlotEngine[TtsSession]):
    name = "tts"

    def __init__(
        self,
        profile: Profile,
        *,
        batch_size: int,
        device: str,
        metrics: Metrics,
        n_q: int = 24,
        cfg: float = 2.0,
        temp: float = 0.6,
        default_voice: str,
    ) -> None:
        from moshi.models import LMGen
        from moshi.models.tts import StateMachine, TokenIds, TTSModel

        self.device = device
        self.profile = profile
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        info = checkpoint_info(profile, "tts")
        lm = load_lm(profile, "tts", info, device, dtype)
        self.n_q = max(1, min(n_q, lm.n_q))
        mimi = load_mimi(profile, info, device, self.n_q)
        raw_cfg = profile.random_tts_config or info.raw_config or {}
        tts_cfg = raw_cfg.get("tts_config") or info.tts_config
        self.voice_suffix = voice_suffix(raw_cfg.get("model_id") or info.model_id)
        token_ids = TokenIds(lm.text_card + 1)
        machine = StateMachine(
            token_ids=token_ids,
            second_stream_ahead=int(tts_cfg.get("second_stream_ahead", 0)),
            max_padding=8,
            initial_padding=2,
        )
        self.tts = TTSModel(
            lm=lm,
            mimi=mimi,
            tokenizer=info.get_text_tokenizer(),
            voice_suffix=self.voice_suffix,
            voice_repo=profile.voice_repo,
            machine=machine,
            delay_steps=int(tts_cfg["audio_delay"] * mimi.frame_rate),
            n_q=self.n_q,
            temp=temp,
        )
        # Like TTSModel.generate: generate only the first n_q codebooks.
        lm.dep_q = self.n_q
        self.lm = lm
        self.mimi = mimi
        self.machine = machine
        self.delay_steps = self.tts.delay_steps
        self.cfg = cfg if cfg in self.tts.valid_cfg_conditionings else None
        if cfg not in self.tts.valid_cfg_conditionings and self.tts.valid_cfg_conditionings:
            log.warning("cfg %s not supported by the model; using its default", cfg)
        self.repo = profile.tts_repo
        self.default_voice_name = default_voice
        self.default_voice = self.load_voice(default_voice)
        self.voice_frames = self.default_voice.shape[-1]
        self.max_delay = max(lm.delays)
        self._delays = torch.tensor(lm.delays[1 : 1 + self.n_q], device=device)
        self._steps_t = torch.zeros(batch_size, dtype=torch.long, device=device)
        self._cur: list[TtsSession | None] = []
        self._exec: np.ndarray = np.zeros(batch_size, dtype=bool)
        self._hook_time = 0.0

        cond = self._conditions([self.default_voice] * batch_size)
        self.lm_gen = LMGen(
            lm,
            temp=temp,
            temp_text=temp,
            cfg_coef=1.0,
            condition_tensors=cond,
            on_text_hook=self._on_text,
            on_audio_hook=self._on_audio,
            support_out_of_sync=True,
        )
        super().__init__(batch_size, metrics, device=device)
        self.lm_gen.streaming_forever(batch_size)
        self.mimi.streaming_forever(batch_size)
        self._cross_modules = [
            layer.cross_attention
            for layer in lm.transformer.layers
            if getattr(layer, "cross_attention", None) is not None
        ]
        state = self.lm_gen._streaming_state
        assert state is not None
        if state.condition_cross is not None:
            with torch.no_grad():
                for mod in self._cross_modules:
                    mod.update_streaming_cross_attention_src(state.condition_cross)
                    # Own the storage: per-slot voices are written into it in place.
                    mst = mod._streaming_state
                    mst.k_cross = mst.k_cross.clone()
                    mst.v_cross = mst.v_cross.clone()

    # ---- voices ---------------------------------------------------------------------------
    def voice_path(self, name: str) -> Path:
        return resolve_voice(
            name,
            voice_dir=self.profile.voice_dir,
            voice_repo=self.profile.voice_repo,
            suffix=self.voice_suffix,
        )

    def load_voice(self, name: str) -> torch.Tensor:
        return load_voice_file(self.voice_path(name))

    def check_voice(self, emb: torch.Tensor) -> torch.Tensor:
        """Reject an inline embedding the model cannot take (before it reaches the batch)."""
        dim = int(self.default_voice.shape[1])
        if emb.dim() != 3 or emb.shape[0] != 1 or emb.shape[1] != dim:
            raise UnknownVoice(f"voice shape must be [1, {dim}, T], got {list(emb.shape)}")
        return emb

    def fit_voice(self, emb: torch.Tensor) -> torch.Tensor:
        """Crop or zero-pad an embedding [1, D, T] to the frame count the batch was built for."""
        t = emb.shape[-1]
        if t >= self.voice_frames:
            return emb[..., : self.voice_frames]
        return torch.nn.functional.pad(emb, (0, self.voice_frames - t))

    def _attributes(self, voice: torch.Tensor) -> Any:
        from moshi.conditioners import ConditionAttributes, TensorCondition

        tensors: dict[str, Any] = {}
        if self.tts.multi_speaker:
            max_sp = self.tts.max_speakers
            d, t = voice.shape[1], voice.shape[2]
            vt = torch.zeros(1, max_sp, t, d)
            mask = torch.zeros(1, max_sp, t, dtype=torch.bool)
            vt[:, 0] = voice[0].transpose(0, 1)
            mask[:, 0] = True
            tensors["speaker_wavs"] = TensorCondition(vt.view(1, -1, d), mask.view(1, -1))
        text: dict[str, str | None] = {"control": "ok"}
        if self.tts.valid_cfg_conditionings:
            text["cfg"] = None if self.cfg is None else format(self.cfg, ".1f")
        return ConditionAttributes(text=text, tensor=tensors)

    def _conditions(self, voices: list[torch.Tensor]) -> Any:
        if self.lm.condition_provider is None:
            return None
        attrs = [self._attributes(v) for v in voices]
        return self.lm.condition_provider.prepare_and_provide(attrs)

    @torch.no_grad()
    def _apply_voice(self, slot: int, voice: torch.Tensor) -> None:
        state = self.lm_gen._streaming_state
        assert state is not None
        cond = self._conditions([voice])
        if cond is None or self.lm.fuser is None:
            return
        s = self.lm.fuser.get_sum(cond)
        if s is not None and state.condition_sum is not None:
            state.condition_sum[slot] = s[0].to(state.condition_sum)
        cross = self.lm.fuser.get_cross(cond)
        if cross is not None:
            cross = cross.to(self.lm.dtype)
            for mod in self._cross_modules:
                k, v = mod._compute_cross_attention(cross, cross)
                mst = mod._streaming_state
                mst.k_cross[slot] = k[0]
                mst.v_cross[slot] = v[0]

    # ---- sessions -------------------------------------------------------------------------
    def new_session(self, slot: int, loop: asyncio.AbstractEventLoop) -> TtsSession:
        return TtsSession(slot, loop)

    def _init_state(self, s: TtsSession) -> TtsSlotState:
        builder = EntryBuilder(
            self.tts.tokenizer,
            self.machine.token_ids,
            self.mimi.frame_rate,
            multi_speaker=self.tts.multi_speaker,
        )
        voice = self.fit_voice(s.voice if s.voice is not None else self.default_voice)
        return TtsSlotState(self.machine.new_state([]), builder, voice)

    def _drain_inbox(self, s: TtsSession, st: TtsSlotState) -> None:
        while s.inbox:
            kind, value = s.inbox.popleft()
            if kind == "text":
                entries = st.builder.entries(value)
                st.machine_state.entries.extend(entries)
            elif kind == "voice":
                # Only honoured before speech starts (the slot's conditioning is fixed after).
                if st.steps == 0:
                    st.voice = self.fit_voice(value)
                    st.conditioned = False
            elif kind == "eos":
                st.eos = True

    def _runnable(self, st: TtsSlotState) -> bool:
        if st.eos:
            return True
        ms = st.machine_state
        # Enough words for the current one plus the model's lookahead stream; the first step
        # waits for them too, so that a `Voice` message sent first still applies.
        if len(ms.entries) > self.machine.second_stream_ahead:
            return True
        # While a word's tokens are being fed or padding is forced, no word is popped.
        return st.steps > 0 and (bool(ms.queued) or ms.forced_padding > 0)

    # ---- hooks run inside LMGen.step on the model thread ------------------------------------
    def _on_text(self, text_tokens: torch.Tensor) -> None:
        t0 = time.perf_counter()
        self._on_text_slots(text_tokens)
        self._hook_time += time.perf_counter() - t0

    def _on_text_slots(self, text_tokens: torch.Tensor) -> None:
        tokens = text_tokens.tolist()
        out = list(tokens)
        for i, s in enumerate(self._cur):
            if s is None or not self._exec[i] or s.state is None:
                out[i] = self.machine.token_ids.pad
                continue
            st = s.state
            out[i], _ = self.machine.process(st.steps, st.machine_state, tokens[i])
        text_tokens[:] = torch.tensor(out, dtype=torch.long, device=text_tokens.device)

    def _on_audio(self, audio_tokens: torch.Tensor) -> None:
        # The audio streams lag the text by delay_steps (+ acoustic delays): before that the
        # codes are "zero" (no input), exactly as TTSModel.generate does per step.
        limit = self._delays[None, :] + self.delay_steps
        mask = self._steps_t[:, None] < limit
        audio_tokens[:] = torch.where(mask, torch.full_like(audio_tokens, -1), audio_tokens)

    # ---- step -----------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, sessions: list[TtsSession | None], resets: list[bool]) -> bool:
        B = self.batch_size
        exec_mask = np.zeros(B, dtype=bool)
        for i, s in enumerate(sessions):
            if s is None or s.closed or s.finished:
                continue
            # A new session starts without a state. Never rebuild it on `resets[i]`: a reset
            # is handed back when no slot could step, and rebuilding would drop queued words.
            if s.state is None:
                s.state = self._init_state(s)
            self._drain_inbox(s, s.state)
            if s.state.eos and s.state.steps == 0 and not s.state.machine_state.entries:
                # Eos before any text: nothing to say. Close at once with no audio, as
                # Kyutai's server does (clients must not rely on a blip of sound).
                s.finished = True
                s.emit(None)
                continue
            if self._runnable(s.state):
                exec_mask[i] = True
        if not exec_mask.any():
            return False

        reset_t = torch.tensor(resets, dtype=torch.bool, device=self.device)
        if reset_t.any():
            self.lm_gen.reset_streaming(reset_t)
            self.mimi.reset_streaming(reset_t)
        for i, s in enumerate(sessions):
            if s is not None and s.state is not None and exec_mask[i] and not s.state.conditioned:
                self._apply_voice(i, s.state.voice)
                s.state.conditioned = True

        self._cur = list(sessions)
        self._exec = exec_mask
        steps = [s.state.steps if (s is not None and s.state is not None) else 0 for s in sessions]
        self._steps_t.copy_(torch.tensor(steps, dtype=torch.long))
        exec_t = torch.from_numpy(exec_mask).to(self.device)
        self.lm_gen.set_exec_mask(exec_t)
        missing = self.lm.n_q - self.lm.dep_q
        inp = torch.full((B, missing, 1), -1, dtype=torch.long, device=self.device)
        t_model = time.perf_counter()
        self._hook_time = 0.0
        frame = self.lm_gen.step(inp)
        assert frame is not None
        self.model_time_total += time.perf_counter() - t_model - self._hook_time

        outs: list[list[dict[str, Any]]] = [[] for _ in range(B)]
        decode_mask = np.zeros(B, dtype=bool)
        for i, s in enumerate(sessions):
            if s is None or s.state is None or not exec_mask[i]:
                continue
            st = s.state
            st.steps += 1
            self._collect_words(st, outs[i])
            j = st.steps - self.max_delay - 1  # index of the (undelayed) frame just completed
            if j >= self.delay_steps:
                decode_mask[i] = True

        pcm: np.ndarray | None = None
        if decode_mask.any():
            codes = frame[:, 1 : 1 + self.n_q, :].clone()
            dm = torch.from_numpy(decode_mask).to(self.device)
            codes = torch.where(dm[:, None, None], codes.clamp(min=0), torch.zeros_like(codes))
            self.mimi.set_exec_mask(dm)
            t_model = time.perf_counter()
            pcm = self.mimi.decode(codes).clamp(-1, 1)[:, 0, :].float().cpu().numpy()
            self.model_time_total += time.perf_counter() - t_model

        n_frames = 0
        for i, s in enumerate(sessions):
            if s is None or s.state is None or not exec_mask[i]:
                continue
            st = s.state
            if decode_mask[i] and pcm is not None:
                j = st.steps - self.max_delay - 1
                if j - self.delay_steps >= DROPPED_FRAMES:
                    outs[i].append(protocol.audio(pcm[i]))
                    st.frames_out += 1
                    n_frames += 1
            ms = st.machine_state
            done = ms.end_step is not None and st.frames_out >= ms.end_step
            if done or st.steps >= MAX_STEPS:
                self._flush_word(st, outs[i], ms.end_step if ms.end_step is not None else st.steps)
                s.finished = True
            if outs[i]:
                s.emit(outs[i])
            if s.finished:
                s.emit(None)
        self.metrics.frames.labels(self.name).inc(n_frames)
        return True

    def _collect_words(self, st: TtsSlotState, out: list[dict[str, Any]]) -> None:
        transcript = st.machine_state.transcript
        while st.words_seen < len(transcript):
            word, step = transcript[st.words_seen]
            st.words_seen += 1
            if st.pending is not None:
                self._flush_word(st, out, step)
            st.pending = _Pending(word, step)
        end = st.machine_state.end_step
        if end is not None and st.pending is not None:
            # Text ended: the last word's stop is known long before its audio is out.
            self._flush_word(st, out, end)

    def _flush_word(self, st: TtsSlotState, out: list[dict[str, Any]], stop_step: int) -> None:
        if st.pending is None:
            return
        start = max(0, st.pending.step - DROPPED_FRAMES) / FRAME_RATE
        stop = max(0, stop_step - DROPPED_FRAMES) / FRAME_RATE
        out.append(protocol.text(st.pending.word, start, max(start, stop)))
        self.metrics.words.labels(self.name).inc()
        st.pending = None
