import pytest

from atp.core.errors import AlreadyExists, InvalidInput
from atp.core.handlers import Handler, HandlerRegistry
from atp.core.model import Task


def task(payload: object = None, subject: str = "a") -> Task:
    return Task(id="T", subject=subject, payload=payload)


def keywords(order_id: int, reason: str = "late") -> None: ...


def one(value: object) -> None: ...


def nothing() -> None: ...


def two(a: int, b: int) -> None: ...


def whole(payload: object) -> None: ...


def anything(*args: object, **kwargs: object) -> None: ...


async def coroutine(value: object = None) -> None: ...


@pytest.mark.parametrize(
    ("fn", "payload", "expected"),
    [
        (keywords, {"order_id": 1}, ((), {"order_id": 1})),
        (keywords, {"order_id": 1, "reason": "x"}, ((), {"order_id": 1, "reason": "x"})),
        (whole, {"order_id": 1}, (({"order_id": 1},), {})),
        (whole, [1], (([1],), {})),
        (whole, None, ((None,), {})),
        (one, {"value": 1}, ((), {"value": 1})),
        (one, [1, 2], (([1, 2],), {})),
        (one, "text", (("text",), {})),
        (one, None, ((None,), {})),
        (nothing, None, ((), {})),
        (anything, {"a": 1}, ((), {"a": 1})),
        (anything, 5, ((5,), {})),
        (coroutine, None, ((), {})),
    ],
)
def test_payload_is_passed_the_way_it_fits(fn, payload, expected):
    assert Handler("a", fn).arguments(task(payload)) == expected


@pytest.mark.parametrize(
    ("fn", "payload"),
    [
        (two, {"a": 1}),
        (two, [1, 2]),
        (two, None),
        (nothing, 5),
        (nothing, {"a": 1}),
        (keywords, {"reason": "x"}),
        (one, {"unexpected": 1}),
    ],
)
def test_a_payload_that_fits_nothing_is_invalid_naming_the_handler(fn, payload):
    with pytest.raises(InvalidInput, match=f"payload does not fit handler {fn.__qualname__}"):
        Handler("a", fn).arguments(task(payload))


def test_a_shape_that_fitted_once_fits_again_and_others_are_still_checked():
    handler = Handler("a", keywords)
    for order_id in (1, 2):
        assert handler.arguments(task({"order_id": order_id})) == ((), {"order_id": order_id})
    with pytest.raises(InvalidInput):
        handler.arguments(task({"order": 1}))


def test_handlers_know_whether_they_are_async():
    assert Handler("a", coroutine).is_async
    assert not Handler("a", one).is_async


def registry(*patterns: str) -> HandlerRegistry:
    found = HandlerRegistry()
    for pattern in patterns:
        found.add(Handler(pattern, one))
    return found


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("orders.close", "orders.close"),
        ("orders.open", "orders.*"),
        ("orders.open.eu", "orders.>"),
        ("sms.send", ">"),
        ("x", ">"),
    ],
)
def test_the_most_specific_pattern_wins(subject, expected):
    found = registry(">", "orders.>", "orders.*", "orders.close")
    handler = found.resolve(subject)
    assert handler is not None
    assert handler.pattern == expected


def test_no_match_resolves_to_none():
    assert registry("orders.*").resolve("sms.send") is None


def test_resolution_sees_handlers_added_later():
    found = registry("orders.>")
    assert found.resolve("orders.close").pattern == "orders.>"  # type: ignore[union-attr]
    found.add(Handler("orders.close", one))
    assert found.resolve("orders.close").pattern == "orders.close"  # type: ignore[union-attr]


def test_a_pattern_takes_one_handler():
    found = registry("orders.*")
    with pytest.raises(AlreadyExists, match=r"'orders\.\*' is registered already"):
        found.add(Handler("orders.*", nothing))


def test_an_invalid_pattern_is_refused():
    with pytest.raises(InvalidInput):
        registry("orders..close")


def test_registry_lists_patterns_in_registration_order():
    found = registry("b", "a.*", ">")
    assert found.patterns() == ["b", "a.*", ">"]
    assert [h.pattern for h in found] == ["b", "a.*", ">"]
    assert len(found) == 3


# -- App: where handlers are declared ---------------------------------------------------


def test_app_registers_handlers_with_their_defaults():
    from atp.core.model import RetryPolicy
    from atp.sdk import App

    app = App("shop")
    policy = RetryPolicy(cap=5)

    @app.task("orders.close", retries=4, timeout="30s", retry=policy)
    async def close(order_id: int) -> None: ...

    @app.task("orders.*", max_attempts=2, timeout=1.5)
    def other() -> None: ...

    handler = app.registry.resolve("orders.close")
    assert handler is not None
    assert (handler.fn, handler.max_attempts, handler.timeout) == (close, 5, 30.0)
    assert handler.retry == policy
    fallback = app.registry.resolve("orders.open")
    assert fallback is not None
    assert (fallback.fn, fallback.max_attempts, fallback.timeout) == (other, 2, 1.5)
    assert repr(app) == "App('shop', subjects=['orders.close', 'orders.*'])"


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"max_attempts": 2, "retries": 1}, "not both"),
        ({"max_attempts": 0}, "integer >= 1"),
        ({"retries": -1}, "integer >= 1"),
        ({"max_attempts": True}, "integer >= 1"),
        ({"timeout": 0}, "timeout must be > 0"),
        ({"timeout": "soon"}, "not a duration"),
    ],
)
def test_app_refuses_bad_defaults(options, reason):
    from atp.sdk import App

    with pytest.raises(InvalidInput, match=reason):
        App().task("a", **options)


def test_apps_are_independent():
    from atp.sdk import App

    first, second = App(), App()

    @first.task("a")
    def a() -> None: ...

    assert len(first.registry) == 1
    assert len(second.registry) == 0
