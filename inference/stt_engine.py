"""Batched streaming speech-to-text: one Mimi encode + one LM step per 80 ms frame for all slots."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from inference import protocol
from inference.engine import Session, SlotEngine
from inference.metrics import Metrics
from inference.profiles import Profile, checkpoint_info, load_lm, load_mimi
from inference.text import WordAssembler, WordOut

log = logging.getLogger(__name__)

FRAME_RATE = 12.5


@dataclass(frozen=True)
class MarkerItem:
    id: int
    # Echo once this many user frames have been stepped (audio before it plus the model delay).
    due_frames: int


class SttSession(Session):
    def __init__(self, slot: int, loop: asyncio.AbstractEventLoop, delay_steps: int) -> None:
        super().__init__(slot, loop)
        self.delay_steps = delay_steps
        # Event-loop side: re-framing buffer and count of samples received.
        self.remainder = np.zeros(0, dtype=np.float32)
        self.samples_in = 0
        # Counted on each side rather than by iterating `inbox`, which the other thread
        # may be appending to (a deque raises when mutated during iteration).
        self.frames_pushed = 0
        self.frames_taken = 0
        # Model-thread side.
        self.frames_done = 0
        self.lead_done = False
        self.markers: deque[MarkerItem] = deque()
        self.words: WordAssembler | None = None
        # Backpressure: the connection stops reading while the backlog is full; the model
        # thread sets `space` (through the loop) after taking a frame, when asked to.
        self.space = asyncio.Event()
        self.waiting_for_space = False

    # ---- event loop side ------------------------------------------------------------------
    def push_audio(self, pcm: np.ndarray) -> None:
        self.samples_in += pcm.size
        frames, self.remainder = protocol.reframe(self.remainder, pcm)
        for f in frames:
            self.inbox.append(f)
        self.frames_pushed += len(frames)

    def push_marker(self, marker_id: int) -> None:
        due = math.ceil(self.samples_in / protocol.FRAME_SIZE) + self.delay_steps
        self.inbox.append(MarkerItem(marker_id, due))

    @property
    def buffered_frames(self) -> int:
        # The loop counts a frame just after appending it, so the thread may be one ahead.
        return max(0, self.frames_pushed - self.frames_taken)

    @property
    def backlog_samples(self) -> int:
        return self.buffered_frames * protocol.FRAME_SIZE + self.remainder.size

    async def wait_for_space(self, max_samples: int) -> None:
        """Return once the backlog is at most `max_samples` (or the session is over)."""
        while not self.closed and not self.finished and self.backlog_samples > max_samples:
            self.space.clear()
            self.waiting_for_space = True
            if self.backlog_samples <= max_samples:  # a frame was taken meanwhile
                break
            try:
                await asyncio.wait_for(self.space.wait(), 1.0)
            except TimeoutError:
                pass
        self.waiting_for_space = False

    def frame_taken(self) -> None:
        """Model thread: a frame left the backlog."""
        if self.waiting_for_space:
            try:
                self.loop.call_soon_threadsafe(self.space.set)
            except RuntimeError:  # the loop is gone (shutdown)
                pass


class SttEngine(SlotEngine[SttSession]):
    name = "stt"

    def __init__(
        self,
        profile: Profile,
        *,
        batch_size: int,
        device: str,
        metrics: Metrics,
    ) -> None:
        from moshi.models import LMGen

        self.device = device
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        info = checkpoint_info(profile, "stt")
        self.lm = load_lm(profile, "stt", info, device, dtype)
        n_audio = self.lm.n_q - self.lm.dep_q
        self.mimi = load_mimi(profile, info, device, n_audio)
        self.tokenizer = info.get_text_tokenizer()
        stt_cfg = (profile.random_stt_config or {}).get("stt_config") or info.stt_config
        self.delay_s = float(stt_cfg.get("audio_delay_seconds", 0.5))
        self.delay_steps = round(self.delay_s * FRAME_RATE)
        self.silence_prefix_s = float(stt_cfg.get("audio_silence_prefix_seconds", 0.0))
        self.has_pause_heads = len(self.lm.extra_heads) > 0
        self.lm_gen = LMGen(self.lm, temp=0.0, temp_text=0.0, support_out_of_sync=True)
        self.repo = profile.stt_repo
        super().__init__(batch_size, metrics, device=device)
        self.mimi.streaming_forever(batch_size)
        self.lm_gen.streaming_forever(batch_size)
        self._pcm = torch.zeros((batch_size, 1, protocol.FRAME_SIZE), device=device)

    def new_session(self, slot: int, loop: asyncio.AbstractEventLoop) -> SttSession:
        s = SttSession(slot, loop, self.delay_steps)
        s.words = WordAssembler(decode=self.tokenizer.decode)
        # The first frame after a reset is not seen by the model (it gets the initial token),
        # and some models want leading silence: prepend silent frames the client never sees.
        n_lead = 1 + round(self.silence_prefix_s * FRAME_RATE)
        for _ in range(n_lead):
            s.inbox.appendleft(("lead", np.zeros(protocol.FRAME_SIZE, dtype=np.float32)))
        return s

    def _take_frame(
        self, s: SttSession, out: list[dict[str, Any]]
    ) -> tuple[np.ndarray, bool] | None:
        """Pop the next frame of a session; markers queued before it are recorded."""
        while s.inbox:
            item = s.inbox[0]
            if isinstance(item, MarkerItem):
                s.inbox.popleft()
                s.markers.append(item)
                continue
            s.inbox.popleft()
            if isinstance(item, tuple):
                return item[1], True
            s.frames_taken += 1
            return item, False
        return None

    @torch.no_grad()
    def step(self, sessions: list[SttSession | None], resets: list[bool]) -> bool:
        B = self.batch_size
        exec_mask = np.zeros(B, dtype=bool)
        lead = np.zeros(B, dtype=bool)
        pcm = np.zeros((B, protocol.FRAME_SIZE), dtype=np.float32)
        outs: list[list[dict[str, Any]]] = [[] for _ in range(B)]
        for i, s in enumerate(sessions):
            if s is None or s.closed:
                continue
            got = self._take_frame(s, outs[i])
            if got is None:
                self._echo_markers(s, outs[i])
                continue
            pcm[i], lead[i] = got
            exec_mask[i] = True
            s.frame_taken()
        if not exec_mask.any():
            for i, s in enumerate(sessions):
                if s is not None and outs[i]:
                    s.emit(outs[i])
            return False

        reset_t = torch.tensor(resets, dtype=torch.bool, device=self.device)
        if reset_t.any():
            self.mimi.reset_streaming(reset_t)
            self.lm_gen.reset_streaming(reset_t)
        exec_t = torch.from_numpy(exec_mask).to(self.device)
        self.mimi.set_exec_mask(exec_t)
        self.lm_gen.set_exec_mask(exec_t)
        self._pcm.copy_(torch.from_numpy(pcm)[:, None, :])
        t_model = time.perf_counter()
        codes = self.mimi.encode(self._pcm)
        res = self.lm_gen.step_with_extra_heads(codes)
        assert res is not None
        tokens_t, heads = res
        tokens = tokens_t[:, 0, 0].cpu().tolist()
        prs: np.ndarray | None = None
        if self.has_pause_heads:
            prs = torch.stack([h[:, 0, 0] for h in heads], dim=1).float().cpu().numpy()
        self.model_time_total += time.perf_counter() - t_model

        n_frames = 0
        for i, s in enumerate(sessions):
            if s is None or not exec_mask[i]:
                continue
            if lead[i]:
                continue
            n_frames += 1
            idx = s.frames_done
            s.frames_done += 1
            # Kyutai's numbering: the n-th step of a session is step n (1-based), and text
            # tokens count from the model delay on; a Step comes before the words of its step.
            if prs is not None:
                buffered = s.buffered_frames * protocol.FRAME_SIZE + s.remainder.size
                outs[i].append(protocol.step(idx, prs[i].tolist(), buffered))
            n = idx + 1
            if n >= self.delay_steps:
                assert s.words is not None
                for out in s.words.push(int(tokens[i]), (n - self.delay_steps) / FRAME_RATE):
                    if isinstance(out, WordOut):
                        outs[i].append(protocol.word(out.text, out.start))
                        self.metrics.words.labels(self.name).inc()
                    else:
                        outs[i].append(protocol.end_word(out.stop))
            self._echo_markers(s, outs[i])
        self.metrics.frames.labels(self.name).inc(n_frames)
        for i, s in enumerate(sessions):
            if s is not None and outs[i]:
                s.emit(outs[i])
        return True

    def _echo_markers(self, s: SttSession, out: list[dict[str, Any]]) -> None:
        while s.markers and s.markers[0].due_frames <= s.frames_done:
            out.append(protocol.marker(s.markers.popleft().id))
