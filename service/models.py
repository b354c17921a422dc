"""Models and predictions: a student's models and the class's shared ones; rename, share, delete,
the default for "Classify message"; predictions (micro-batched) and whole files classified."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import select

from storage.models import CLASS, PRIVATE, Model

from .base import MAX_NAME, MAX_PREDICT_CHARS, MAX_PREDICT_TEXTS, ServiceBase
from .errors import Conflict, InvalidRequest
from .views import Caller, ModelView, csv_cell

log = logging.getLogger("tinytutor.service")


class Models(ServiceBase):
    # -- models ----------------------------------------------------------------------------------
    async def models(self, caller: Caller) -> list[ModelView]:
        """The caller's models and those shared with their class, newest first."""
        async with self.db.transaction() as s:
            member = await self._member(s, caller)
            rows = (await s.execute(select(Model).where(
                Model.guild_id == caller.guild_id,
                (Model.owner_id == caller.user_id) | (Model.visibility == CLASS)).order_by(Model.id.desc()))).scalars()
            return [self._model_view(m, member.default_model_id) for m in rows]

    async def rename_model(self, caller: Caller, model_id: int, new_name: str) -> ModelView:
        new_name = (new_name or "").strip()
        if not new_name or len(new_name) > MAX_NAME:
            raise InvalidRequest(f"Give the model a name of 1 to {MAX_NAME} characters.")
        async with self.db.transaction() as s:
            m = await self._owned_model(s, caller, model_id)
            clash = (await s.execute(select(Model.id).where(
                Model.guild_id == m.guild_id, Model.owner_id == m.owner_id, Model.name == new_name,
                Model.version == m.version, Model.id != m.id))).first()
            if clash:
                raise Conflict(f"You already have a model called {new_name} v{m.version}.")
            m.name = new_name
            return self._model_view(m)

    async def share_model(self, caller: Caller, model_id: int, shared: bool = True) -> ModelView:
        async with self.db.transaction() as s:
            m = await self._owned_model(s, caller, model_id)
            m.visibility = CLASS if shared else PRIVATE
            return self._model_view(m)

    async def set_default_model(self, caller: Caller, model_id: int) -> ModelView:
        async with self.db.transaction() as s:
            m = await self._usable_model(s, caller, model_id)
            member = await self._member(s, caller)
            member.default_model_id = m.id
            return self._model_view(m, m.id)

    async def delete_model(self, caller: Caller, model_id: int) -> ModelView:
        """Delete the model row and its files (the job and its report stay, without a model)."""
        async with self.db.transaction() as s:
            m = await self._owned_model(s, caller, model_id)
            view, path = self._model_view(m), m.path
            await s.delete(m)
        if self._predictors is not None:
            self._predictors.forget(self.store.path(path))
        await asyncio.to_thread(self.store.remove_tree, path)
        return view

    async def model(self, caller: Caller, model_id: int | None) -> ModelView:
        """A model the caller may use (``None``: their default); refuses as ``predict`` would, without loading it."""
        async with self.db.transaction() as s:
            return self._model_view(await self._model_to_use(s, caller, model_id))

    async def check_rate(self, caller: Caller, action: str) -> None:
        """RateLimited now if one more ``action`` ("predict", "predict_file") would be over the student's
        limit, counting nothing: for a command to refuse privately before it answers in public."""
        async with self.db.transaction() as s:
            cls = await self._class(s, caller.guild_id)
        await self._rate_limit(caller, cls, action, count=False)

    async def predict(self, caller: Caller, model_id: int | None, texts: list[str], top_k: int = 3,
                      explain: bool = False):
        """Classify texts with a model the caller may use (``None``: their default model).

        Loading and inference run in a thread; the event loop never waits on them. Requests for the
        same model that arrive within ``[queue].predict_batch_ms`` share one forward pass. Each call
        counts towards the student's ``predictions_per_minute``. ``explain``: each prediction says which
        words drove it (``trainer.explain``, through the same served model)."""
        async with self.db.transaction() as s:
            cls = await self._class(s, caller.guild_id)
        await self._rate_limit(caller, cls, "predict")
        return await self._classify(caller, model_id, texts, top_k, explain)

    async def _classify(self, caller: Caller, model_id: int | None, texts: list[str], top_k: int = 3,
                        explain: bool = False):
        texts = [t for t in texts if t and t.strip()]
        if not texts:
            raise InvalidRequest("Give at least one non-empty text to classify.")
        if len(texts) > MAX_PREDICT_TEXTS:
            raise InvalidRequest(f"At most {MAX_PREDICT_TEXTS} texts at once; you gave {len(texts)}.")
        texts = [t[:MAX_PREDICT_CHARS] for t in texts]
        async with self.db.transaction() as s:
            m = await self._model_to_use(s, caller, model_id)
            view, path = self._model_view(m), self.store.path(m.path)

        from trainer.errors import TrainerError

        try:
            if explain:  # its own call: every word of the text left out in turn, in one batch
                return view, await asyncio.to_thread(
                    lambda: self.predictors.get(str(path)).predict(texts, top_k=top_k, explain=True))
            return view, await self.batcher.predict((str(path), top_k), texts)
        except (TrainerError, OSError):  # its files are gone or damaged: say so, do not show a traceback
            log.exception("model %s at %s cannot be loaded", view.id, path)
            raise Conflict(f"Model {view.label} cannot be loaded (its files are missing or damaged); "
                           "train it again or ask your instructor.") from None

    def _predict_batch(self, key: tuple[str, int], texts: list[str]):
        """One forward pass for a micro-batch (in a worker thread): load the model if needed, classify."""
        path, top_k = key
        return self.predictors.get(path).predict(texts, top_k=top_k)

    async def predict_file(self, caller: Caller, model_id: int | None, content: bytes, filename: str,
                           max_rows: int = 2000):
        """Classify every row of an uploaded table; returns (model, CSV bytes with predictions, rows)."""
        import csv
        import io

        from trainer.check import read_texts

        async with self.db.transaction() as s:
            cls = await self._class(s, caller.guild_id)
        await self._rate_limit(caller, cls, "predict_file")
        self._check_bytes(cls, len(content))
        with self._staged((content, filename)) as ((staged,), _):
            table = await self._read(caller, read_texts, str(staged), self._limits_for(cls), max_rows)
        columns, rows = table["columns"], [dict(zip(table["columns"], r, strict=True)) for r in table["rows"]]
        from trainer.data import find_text_column

        col = find_text_column(columns)
        if col is None:
            raise InvalidRequest("No text column found: name one column 'text' (or 'message', 'sentence', '文本').")
        texts = [str(r.get(col) or "") for r in rows]
        idx = [i for i, t in enumerate(texts) if t.strip()]
        if not idx:
            raise InvalidRequest(f"Column '{col}' is empty.")
        view, preds = None, []
        for start in range(0, len(idx), MAX_PREDICT_TEXTS):
            view, part = await self._classify(caller, model_id,
                                              [texts[i] for i in idx[start:start + MAX_PREDICT_TEXTS]])
            preds.extend(part)
        by_row = dict(zip(idx, preds, strict=True))
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow([csv_cell(c) for c in [*columns, "predicted_label", "confidence"]])
        for i, row in enumerate(rows):
            p = by_row.get(i)
            w.writerow([*(csv_cell(row.get(c, "")) for c in columns), csv_cell(p.label) if p else "",
                        f"{p.score:.4f}" if p else ""])
        return view, out.getvalue().encode("utf-8"), len(idx)
