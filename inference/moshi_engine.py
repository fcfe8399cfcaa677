"""Batched, clocked Moshi: one Mimi encode + one LM step + one Mimi decode per 80 ms for all slots.

Moshi listens and speaks at once, so unlike the STT engine (which steps whenever some slot has
audio) this engine keeps time itself: while any slot is open it steps the whole batch once
every 80 ms, and each open slot consumes exactly one input frame per step.

- **Late input is silence.** A muted or lossy microphone must not freeze Moshi mid-sentence:
  a slot with no queued frame is stepped with silence (an underrun, counted once its client
  has sent any audio).
- **Early input is dropped.** A duplex model must never fall behind the conversation: when
  more than `max_queued_frames` frames wait, the oldest are dropped (counted), so a client that
  sends seconds at once hears Moshi react to the present, not to a growing backlog.
- **A standing queue is trimmed.** Like a jitter buffer: when a frame was left waiting after
  every step of a 2 s window, the queue is a constant delay (a session's first frame waits
  behind its lead step; a client clock running fast), not a cushion against jitter, so the
  oldest frame is dropped (counted with the drops) and the session's latency falls by 80 ms.

A new slot first steps one silent lead frame whose Mimi encoder state is reset afterwards:
the LM sees its initial token in place of the first frame (moshi.server does the same), and
that step's output is the one `LMGen` leaves ungenerated for the acoustic delay. The lead step
is an extra call masked to the new slots, in the same tick as their first real frame. From then
on each input frame gives exactly one output frame, numbered by `step_idx` from 0.

The clock's phase: a frame waits 0-80 ms for the next tick. When the first session arrives at
an idle engine the clock starts on its first frame (or after `FIRST_FRAME_WAIT_S`), so a lone
session's frames are stepped as they arrive; later sessions join the running clock.

Per-slot controls go through `LMGen`'s hooks, so one batch serves all: `hold` forces PAD text
and Mimi's silence codes (Moshi keeps hearing the user and reads its own silence back), and
`pad_bias` adds to the PAD logit (talkativeness).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from inference import chat_protocol, protocol
from inference.engine import Session, SlotEngine
from inference.metrics import Metrics
from inference.profiles import Profile, checkpoint_info, load_lm, load_mimi

log = logging.getLogger(__name__)

FRAME_PERIOD_S = protocol.FRAME_SIZE / protocol.SAMPLE_RATE
# An idle engine starts its clock on the first session's first frame, or after this.
FIRST_FRAME_WAIT_S = 0.1
# How long after that first frame the first tick comes: the later frames' arrival jitter.
PHASE_MARGIN_S = 0.025
# Steps (2 s) over which a frame left waiting after every step reads as a standing delay.
TRIM_WINDOW_STEPS = 25
UNGENERATED = -2  # LMGen's token for "not generated" (acoustic delay, masked slots)
EPAD = 0


@dataclass(frozen=True)
class MarkerItem:
    id: int


class MoshiSession(Session):
    def __init__(self, slot: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(slot, loop)
        # Event-loop side.
        self.remainder = np.zeros(0, dtype=np.float32)
        self.frames_pushed = 0
        # Controls: plain attributes written by the loop, read once per step by the thread.
        self.held = False
        self.pad_bias = 0.0
        # Model-thread side.
        self.lead_pending = True
        self.frames_used = 0  # taken or dropped
        self.step_idx = 0
        self.underruns = 0
        self.dropped = 0
        self._window_min = 1 << 30
        self._window_steps = 0

    # ---- event loop side ------------------------------------------------------------------
    def push_audio(self, pcm: np.ndarray) -> None:
        frames, self.remainder = protocol.reframe(self.remainder, pcm)
        for f in frames:
            self.inbox.append(f)
        # After the appends: the thread never counts a frame it cannot pop yet.
        self.frames_pushed += len(frames)

    def push_marker(self, marker_id: int) -> None:
        """Echoed once every whole frame sent before it was stepped (or dropped)."""
        self.inbox.append(MarkerItem(marker_id))

    def control(self, action: str, value: float = 0.0) -> None:
        if action == "hold":
            self.held = True
        elif action == "release":
            self.held = False
        elif action == "pad_bias":
            self.pad_bias = float(value)

    # ---- model thread side ----------------------------------------------------------------
    @property
    def queued_frames(self) -> int:
        return self.frames_pushed - self.frames_used

    def take_frame(
        self, max_queued: int, markers: list[int], trim_window: int = TRIM_WINDOW_STEPS
    ) -> tuple[np.ndarray | None, int]:
        """The frame for this step (None: nothing queued) and how many were dropped first.

        Markers met on the way, and those right behind the taken frame, go to `markers`: the
        audio sent before them is being (or has been) stepped. `trim_window` 0 never trims a
        standing queue."""
        dropped = 0
        while self.queued_frames > max_queued:
            if self._pop_frame(markers) is None:
                break
            dropped += 1
        if trim_window:
            self._window_min = min(self._window_min, self.queued_frames)
            self._window_steps += 1
            if self._window_steps >= trim_window:
                # Two or more queued at every step: one was always left waiting.
                if self._window_min >= 2 and self._pop_frame(markers) is not None:
                    dropped += 1
                self._window_min, self._window_steps = 1 << 30, 0
        frame = self._pop_frame(markers) if self.queued_frames > 0 else None
        while self.inbox and isinstance(self.inbox[0], MarkerItem):
            markers.append(self.inbox.popleft().id)
        return frame, dropped

    def _pop_frame(self, markers: list[int]) -> np.ndarray | None:
        while self.inbox:
            item = self.inbox.popleft()
            if isinstance(item, MarkerItem):
                markers.append(item.id)
                continue
            self.frames_used += 1
            return np.asarray(item)
        return None


class MoshiEngine(SlotEngine[MoshiSession]):
    name = "moshi"
    clocked = True

    def __init__(
        self,
        profile: Profile,
        *,
        batch_size: int,
        device: str,
        metrics: Metrics,
        max_queued_frames: int = 3,
        trim_window: int = TRIM_WINDOW_STEPS,
    ) -> None:
        from moshi.models import LMGen

        self.device = device
        self.max_queued_frames = max_queued_frames
        self.trim_window = trim_window
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        info = checkpoint_info(profile, "moshi")
        self.lm = load_lm(profile, "moshi", info, device, dtype)
        self.n_user = self.lm.n_q - self.lm.dep_q
        self.mimi = load_mimi(profile, info, device, max(self.lm.dep_q, self.n_user))
        self.tokenizer = info.get_text_tokenizer()
        self.pad_id = int(self.lm.existing_text_padding_id)
        self.repo = profile.moshi_repo
        # Sampling as the checkpoint asks (greedy for the tiny one); moshi's defaults otherwise.
        self.gen_config = dict(info.lm_gen_config or {})
        self.lm_gen = LMGen(
            self.lm,
            support_out_of_sync=True,
            on_text_logits_hook=self._bias_pad,
            on_text_hook=self._hold_text,
            on_audio_hook=self._hold_audio,
            **self.gen_config,
        )
        self.silence_codes = self._find_silence_codes()
        super().__init__(batch_size, metrics, device=device)
        self.mimi.streaming_forever(batch_size)
        self.lm_gen.streaming_forever(batch_size)
        self._pcm = torch.zeros((batch_size, 1, protocol.FRAME_SIZE), device=device)
        self._held = torch.zeros(batch_size, dtype=torch.bool, device=device)
        self._pad_bias = torch.zeros(batch_size, dtype=torch.float32, device=device)
        self._clock_stop = threading.Event()
        self.underruns = 0
        self.dropped = 0
        self.late_ticks = 0
        # Durations of the latest steps (selftest, benchmarks): the clock's margin.
        self.recent_steps: deque[float] = deque(maxlen=4096)

    @torch.no_grad()
    def _find_silence_codes(self) -> torch.Tensor:
        """Mimi's codes for digital silence, what a held Moshi "says" ([dep_q])."""
        zeros = torch.zeros((1, 1, protocol.FRAME_SIZE * 4), device=self.device)
        codes = self.mimi.encode(zeros)  # [1, n_q, T], not streaming: its own padding
        return codes[0, : self.lm.dep_q, -1].clone()

    # ---- LMGen hooks (model thread) -------------------------------------------------------
    def _bias_pad(self, logits: torch.Tensor) -> None:
        logits[:, 0, 0, self.pad_id] += self._pad_bias.to(logits.dtype)

    def _hold_text(self, tokens: torch.Tensor) -> None:
        tokens.copy_(torch.where(self._held, torch.full_like(tokens, self.pad_id), tokens))

    def _hold_audio(self, tokens: torch.Tensor) -> None:
        silence = self.silence_codes[None, :].expand_as(tokens)
        tokens.copy_(torch.where(self._held[:, None], silence, tokens))

    # ---- event loop -----------------------------------------------------------------------
    def new_session(self, slot: int, loop: asyncio.AbstractEventLoop) -> MoshiSession:
        return MoshiSession(slot, loop)

    def reset_counters(self) -> None:
        """After the warm-up: its synthetic sessions are not traffic."""
        self.underruns = self.dropped = self.late_ticks = 0
        self.recent_steps.clear()

    def tick(self) -> bool:
        t0 = time.perf_counter()
        did = super().tick()
        if did:
            self.recent_steps.append(time.perf_counter() - t0)
        return did

    # ---- the clock ------------------------------------------------------------------------
    def stop(self, timeout: float = 10.0) -> None:
        self._clock_stop.set()
        super().stop(timeout)

    def _run(self) -> None:
        torch.set_grad_enabled(False)
        deadline: float | None = None
        while not self._stopping:
            if self.open_slots == 0:
                deadline = None  # idle: sleep until a session arrives
                self._wake.wait()
                self._wake.clear()
                continue
            if deadline is None:
                got = self._await_first_frame()
                # A tick right at the arrival time would miss every frame that comes a hair
                # late (a whole 80 ms each): leave them a margin.
                deadline = time.monotonic() + (PHASE_MARGIN_S if got else 0.0)
            now = time.monotonic()
            if now < deadline:
                self._clock_stop.wait(deadline - now)
                continue
            self.tick()
            deadline += FRAME_PERIOD_S
            if time.monotonic() > deadline:
                # The step overran its 80 ms: skip the missed ticks instead of bursting to
                # catch up (queues absorb it; drops keep the latency bounded).
                self.late_ticks += 1
                self.metrics.late_ticks.labels(self.name).inc()
                deadline = time.monotonic()

    def _await_first_frame(self) -> bool:
        """Start the clock in phase with the first client: when its first frame arrives.
        False when none came in time (the clock starts anyway: Moshi greets on its own)."""
        until = time.monotonic() + FIRST_FRAME_WAIT_S
        while not self._stopping and time.monotonic() < until:
            if any(s is not None and s.frames_pushed for s in list(self._slots)):
                return True
            self._wake.wait(max(0.0, until - time.monotonic()))
            self._wake.clear()
        return False

    # ---- one step -------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, sessions: list[MoshiSession | None], resets: list[bool]) -> bool:
        B = self.batch_size
        active = np.array([s is not None and not s.closed for s in sessions], dtype=bool)
        if not active.any():
            return False
        dev = self.device
        reset_t = torch.tensor(resets, dtype=torch.bool, device=dev) & torch.from_numpy(active).to(
            dev
        )
        if reset_t.any():
            self.mimi.reset_streaming(reset_t)
            self.lm_gen.reset_streaming(reset_t)
        # Controls first: the hooks read them in the lead step too (it samples the first token).
        held = np.array([bool(s is not None and s.held) for s in sessions])
        bias = np.array([s.pad_bias if s is not None else 0.0 for s in sessions], np.float32)
        self._held.copy_(torch.from_numpy(held))
        self._pad_bias.copy_(torch.from_numpy(bias))
        t_model = time.perf_counter()
        lead = np.array(
            [s is not None and active[i] and s.lead_pending for i, s in enumerate(sessions)]
        )
        if lead.any():
            self._lead_step(lead)
            for i, s in enumerate(sessions):
                if s is not None and lead[i]:
                    s.lead_pending = False
        self.model_time_total += time.perf_counter() - t_model

        pcm = np.zeros((B, protocol.FRAME_SIZE), dtype=np.float32)
        markers: list[list[int]] = [[] for _ in range(B)]
        for i, s in enumerate(sessions):
            if s is None or not active[i]:
                continue
            frame, dropped = s.take_frame(self.max_queued_frames, markers[i], self.trim_window)
            if dropped:
                s.dropped += dropped
                self.dropped += dropped
                self.metrics.dropped_frames.labels(self.name).inc(dropped)
            if frame is not None:
                pcm[i] = frame
            elif s.frames_pushed > 0:
                s.underruns += 1
                self.underruns += 1
                self.metrics.underruns.labels(self.name).inc()

        exec_t = torch.from_numpy(active).to(dev)
        self.mimi.set_exec_mask(exec_t)
        self.lm_gen.set_exec_mask(exec_t)
        self._pcm.copy_(torch.from_numpy(pcm)[:, None, :])
        t_model = time.perf_counter()
        codes = self.mimi.encode(self._pcm)[:, : self.n_user]
        tokens = self.lm_gen.step(codes)
        assert tokens is not None  # support_out_of_sync: never None
        texts = tokens[:, 0, 0].cpu().tolist()
        audio_codes = tokens[:, 1:, :]
        missing = audio_codes == UNGENERATED
        if missing.any():  # not expected after the lead step; silence rather than garbage
            audio_codes = torch.where(missing, self.silence_codes[None, :, None], audio_codes)
        out_pcm = self.mimi.decode(audio_codes)[:, 0].float().cpu().numpy()
        self.model_time_total += time.perf_counter() - t_model

        n_out = 0
        for i, s in enumerate(sessions):
            if s is None or not active[i]:
                continue
            # The piece goes first: a client can mark the frame as speech when it arrives.
            msgs: list[dict[str, Any]] = []
            token = int(texts[i])
            if held[i]:
                # An output frame mixes tokens of two steps (the acoustic delay): the hooks
                # silence what is sampled from now on, this silences the frame already due.
                token = self.pad_id
                out_pcm[i] = 0.0
            if token >= 0 and token not in (EPAD, self.pad_id):
                piece = chat_protocol.piece_text(self.tokenizer.id_to_piece(token))
                msgs.append(chat_protocol.text_out(piece, s.step_idx))
                self.metrics.words.labels(self.name).inc()
            msgs.append(chat_protocol.audio_out(out_pcm[i], s.step_idx))
            msgs.extend(protocol.marker(m) for m in markers[i])
            s.step_idx += 1
            n_out += 1
            s.emit(msgs)
        self.metrics.frames.labels(self.name).inc(n_out)
        return True

    def _lead_step(self, lead: np.ndarray) -> None:
        """New slots step one silent frame, in an extra batched call masked to them: the LM
        reads its initial token in place of it, and its output is the one `LMGen` leaves
        ungenerated for the acoustic delay. Done in the same tick as their first real frame,
        so a session's first frame never waits a tick behind it."""
        lead_t = torch.from_numpy(lead).to(self.device)
        self.mimi.set_exec_mask(lead_t)
        self.lm_gen.set_exec_mask(lead_t)
        self._pcm.zero_()
        codes = self.mimi.encode(self._pcm)[:, : self.n_user]
        # The lead frame is "in the past" for the model: its encoder padding is applied again
        # to the first real frame (moshi.server's first-frame rule).
        self.mimi.reset_streaming(lead_t)
        self.lm_gen.step(codes)
