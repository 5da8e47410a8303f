"""``Catalog`` methods for events and recommendations (mixed into :class:`catalens.core.Catalog`).

Keep these thin: each method calls the functions of this package with the catalog's
database, settings and stored vectors.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from catalens.catalog_base import CatalogParts

if TYPE_CHECKING:
    from catalens.recommend.engine import RecommendEngine, RecommendResult
    from catalens.recommend.evaluate import EvalReport
    from catalens.recommend.events import EventImportReport


class RecommendMixin(CatalogParts):
    """Methods for events and recommendations."""

    _rec_state: Any = None

    # ---- events -------------------------------------------------------------------------------
    def import_events(self, path: str | Path, *, skip_unknown: bool = False) -> EventImportReport:
        """Import a CSV / JSONL / Parquet events file (idempotent); returns an ``EventImportReport``.
        Events of products not in the catalog are stored and reported per row (``warnings``), or
        left out and reported per row (``skipped``) with ``skip_unknown=True``.

        ``path``: the events file (columns user_id, product_id, event, timestamp; optional weight,
        session).

        ``skip_unknown``: leave out events of products not in the catalog."""
        from catalens.recommend.events import import_events

        return import_events(self.db, path, on_unknown="skip" if skip_unknown else "store")

    def record_event(
        self,
        user_id: str,
        product_id: str,
        event: str,
        timestamp: datetime | str | float | None = None,
        *,
        weight: float | None = None,
        session: str | None = None,
    ) -> bool:
        """Record one event (now when ``timestamp`` is None); True when it was new.

        ``user_id`` / ``product_id``: who did what to which product; ``weight``: the event's weight
        (default: by kind); ``session``: an optional session id.

        ``event``: view | click | like | cart | purchase (or an alias such as buy, order, add_to_cart)."""
        from catalens.recommend.events import EventImportReport, parse_event, store_events

        row = {
            "user_id": user_id,
            "product_id": product_id,
            "event": event,
            "timestamp": timestamp if timestamp is not None else datetime.now().astimezone(),
            "weight": weight,
            "session": session,
        }
        try:
            ev = parse_event(row)
        except ValueError as exc:
            from catalens.errors import ConfigError

            raise ConfigError(f"bad event: {exc}") from exc
        report = store_events(self.db, [ev], report=EventImportReport(source="api"))
        return report.inserted == 1

    def event_count(self) -> int:
        """How many events the event log holds."""
        from catalens.recommend.events import count_events

        return count_events(self.db)

    # ---- recommending -------------------------------------------------------------------------
    def recommend_engine(
        self, model: str | None = None, *, config: Any = None, refit: bool = False
    ) -> RecommendEngine:
        """The fitted :class:`RecommendEngine`: kept in memory and stored under
        ``<home>/recommend/<key>/`` (see :mod:`catalens.recommend.store`), so later processes load it
        instead of refitting; refitted when the items or the configuration changed, or the event log
        grew by more than 10 % (or changed otherwise) since the fit.

        ``model``: the embedding model (default: the configured one).

        ``config``: a :class:`~catalens.recommend.config.RecommendConfig`; ``refit``: fit again even
        when a stored engine is current."""
        state = self._recommend_state(model, config=config, refit=refit)
        assert state is not None
        engine: RecommendEngine = state["engine"]
        return engine

    def _recommend_state(
        self, model: str | None = None, *, config: Any = None, refit: bool = False, fit: bool = True
    ) -> dict[str, Any] | None:
        """The published engine state (``engine``, ``key``, ``events``, ``top``, ``info``), made
        current as :meth:`recommend_engine` says. ``fit=False`` never fits: the state in memory or
        one loaded from the store (fresh or not), else None. The state is one dict, replaced whole:
        a reader that took it sees one consistent engine and event watermark."""
        from catalens.recommend.config import RecommendConfig
        from catalens.recommend.engine import RecommendEngine
        from catalens.recommend.events import events_after, fingerprint, load_events
        from catalens.recommend.items import item_space_key, load_item_space
        from catalens.recommend.store import EngineStore, EventState, engine_key, is_fresh

        cfg = config or RecommendConfig()
        space = item_space_key(self, model)
        key = engine_key(space, cfg.to_dict())
        ident = engine_key(space[:2], cfg.to_dict())  # the model, its version and the configuration
        now = EventState(*fingerprint(self.db))

        def fresh(fitted: EventState) -> bool:
            if now == fitted:
                return True
            return is_fresh(fitted, now, events_after(self.db, fitted.top))

        st = self._rec_state
        if st is not None and st["key"] == key and (not fit or (not refit and fresh(st["events"]))):
            return st  # type: ignore[no-any-return]
        store = EngineStore(self.settings.home / "recommend")
        t0 = time.perf_counter()
        loaded = None if refit else store.load(key)
        if loaded is None and not fit:
            if st is not None and st.get("ident") == ident:
                # the catalog changed since the last fit (a product added, edited or deleted) and the
                # refit that change scheduled has not published yet: a reader is served the last
                # engine of this model and configuration, marked stale, rather than nothing
                return {**st, "stale": True}
            return None
        if loaded is not None and (not fit or fresh(EventState(loaded[1]["count"], loaded[1]["top"]))):
            engine, meta = loaded
            fitted = EventState(meta["count"], meta["top"])
            source = {"source": "loaded", "seconds": meta["load_s"], "path": str(store.path(key))}
        else:
            items = load_item_space(self, model)
            engine = RecommendEngine(items, load_events(self.db), cfg).fit_all()
            fitted = now
            fit_s = round(time.perf_counter() - t0, 3)
            saved = store.save(key, engine, now, {"fit_s": fit_s, "model": items.model})
            source = {"source": "fitted", "seconds": fit_s, "path": str(store.path(key)) if saved else None}
        state = {
            "engine": engine,
            "key": key,
            "ident": ident,
            "events": fitted,
            "top": fitted.top,
            "info": source,
        }
        self._rec_state = state
        return state

    def _recommend_state_for_read(self, model: str | None) -> dict[str, Any]:
        """The engine state a recommendation request uses (the library fits when needed; the
        service overrides this so that a reader never fits)."""
        state = self._recommend_state(model)
        assert state is not None
        return state

    def recommend_engine_info(self) -> dict[str, Any] | None:
        """How the current engine was obtained: ``source`` (fitted | loaded), ``seconds``, ``path``."""
        return None if self._rec_state is None else dict(self._rec_state["info"])

    def _newer_events(self, user: str, top: Any = None) -> Any:
        from catalens.recommend.events import load_user_events

        after = self._rec_state["top"] if top is None else top
        return load_user_events(self.db, user, after_id=after)

    def recommend(
        self,
        user: str | None = None,
        products: Sequence[str] | None = None,
        *,
        k: int = 20,
        recommender: str = "hybrid",
        where: str | None = None,
        exclude: Sequence[str] = (),
        include_out_of_stock: bool = False,
        diversity: str | None = None,
        max_per_category: int | None = None,
        model: str | None = None,
    ) -> RecommendResult:
        """Recommendations for a user (``user=``) or an anonymous session/basket (``products=``).

        ``recommender``: a registered recommender (hybrid, visual, item2item, cf, attributes, popular,
        random); ``where``: an attribute filter as in search; ``exclude``: product ids never
        recommended; ``include_out_of_stock``: also sold-out products; ``diversity``: interests | mmr |
        none; ``max_per_category``: at most this many items per category; ``model``: the embedding
        model.

        ``user``: a shopper id; ``products``: product ids of an anonymous session or basket (one of the
        two); ``k``: list length."""
        from catalens.errors import ConfigError, NotFoundError
        from catalens.recommend.events import EmptyEventsError

        if (user is None) == (products is None):
            raise ConfigError("give either a user or a list of products")
        if k < 1:
            raise ConfigError("k must be at least 1")
        state = self._recommend_state_for_read(model)  # one snapshot: engine, watermark and info agree
        engine, info = state["engine"], dict(state["info"])
        if state.get("stale"):
            info["stale"] = True  # the catalog moved since this engine's fit; a refit is on its way
        opts = dict(
            recommender=recommender,
            where=where,
            exclude=exclude,
            include_out_of_stock=include_out_of_stock,
            diversity=diversity,
            max_per_category=max_per_category,
        )
        if products is not None:
            if not products:
                raise ConfigError("give at least one product id")
            try:
                res: RecommendResult = engine.recommend_products(list(products), k, **opts)
            except NotFoundError:
                if state.get("stale") and self._existing(products) == set(products):
                    raise self._not_ready() from None  # new products the last engine never saw
                raise
            if len(engine.inter) == 0:
                res.note = "no events yet: visual similarity only"
            res.engine = info
            return self._existing_only(res) if state.get("stale") else res
        if len(engine.inter) == 0 and self.event_count() == 0:
            raise EmptyEventsError(
                "the event log is empty: import events with `catalens events import FILE` "
                "(or recommend for products with --products A,B)"
            )
        assert user is not None  # one of user / products was checked above
        res = engine.recommend_user(user, k, extra=self._newer_events(user, state["top"]), **opts)
        res.engine = info
        return self._existing_only(res) if state.get("stale") else res

    def _existing(self, ids: Sequence[str]) -> set[str]:
        """The product ids of ``ids`` the catalog still holds."""
        from sqlalchemy import select

        from catalens.catalog.schema import Product

        if not ids:
            return set()
        with self.db.session() as s:
            return set(s.scalars(select(Product.id).where(Product.id.in_(set(ids)))))

    def _existing_only(self, res: RecommendResult) -> RecommendResult:
        """``res`` without products deleted since the (stale) engine's fit."""
        alive = self._existing([r.product_id for r in res.items])
        res.items = [r for r in res.items if r.product_id in alive]
        return res

    def _not_ready(self) -> Exception:
        """The error a reader gets while no engine can answer yet (a service answers 503)."""
        from catalens.errors import ConfigError

        return ConfigError("recommendations are being prepared; retry shortly")

    def recommend_eval(
        self,
        events: str | Path | None = None,
        *,
        recommenders: Sequence[str] | None = None,
        k: int = 10,
        n_holdout: int = 1,
        max_users: int | None = None,
        model: str | None = None,
        config: Any = None,
    ) -> EvalReport:
        """Leave-last-out evaluation of recommenders against popularity and random (an ``EvalReport``).

        ``events``: an events file to import first (default: the stored log); ``k``: list length;
        ``n_holdout``: last purchases held out per shopper; ``max_users``: at most this many shoppers;
        ``model``: the embedding model; ``config``: a
        :class:`~catalens.recommend.config.RecommendConfig`.

        ``recommenders``: the recommenders compared (default: every one)."""
        from catalens.recommend.evaluate import DEFAULT_RECOMMENDERS, evaluate
        from catalens.recommend.events import EmptyEventsError, EventArrays, load_events, read_events
        from catalens.recommend.items import load_item_space
        from catalens.recommend.recommenders import get_recommender

        names = tuple(recommenders or DEFAULT_RECOMMENDERS)
        for n in names:
            get_recommender(n)
        items = load_item_space(self, model)
        if events is None:
            arrays = load_events(self.db)
            where = "the catalog's event log"
        else:
            evs, _issues = read_events(events)
            arrays = EventArrays.from_events(evs)
            where = str(events)
        if len(arrays) == 0:
            raise EmptyEventsError(f"{where} has no valid events to evaluate")
        report = evaluate(
            items, arrays, recommenders=names, k=k, n_holdout=n_holdout, max_users=max_users, config=config
        )
        if report.users == 0:
            raise EmptyEventsError(
                f"{where}: no user has a purchase after other events, so leave-last-out has nothing to hold out"
            )
        return report

    def list_recommenders(self) -> list[dict[str, str]]:
        """The registered recommenders: name and description."""
        import catalens.recommend.engine  # noqa: F401  (registers the hybrid)
        from catalens.recommend.recommenders import list_recommenders

        return list_recommenders()
