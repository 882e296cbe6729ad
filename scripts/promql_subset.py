"""The small subset of PromQL that docs/grafana/pos-dashboard.json uses, over scrapes kept in memory.

``scripts.render_dashboard`` evaluates the dashboard's panels with it. The subset: selectors with ``= != =~ !~``
matchers, ``rate``/``increase`` over counters (the increase between the first and last scrape in the window, counter
resets counted: no extrapolation to the window's edges), ``sum``/``min``/``max``/``avg``/``count`` with ``by``,
``histogram_quantile`` (Prometheus's linear interpolation) and ``+ - * /`` between vectors or numbers, vectors
matched on identical labels. Anything else raises ``Unsupported``.
"""

import math
import re
from collections import defaultdict

from prometheus_client.parser import text_string_to_metric_families


class Unsupported(ValueError):
    """A query outside the PromQL subset this script evaluates."""


# ---------------------------------------------------------------- parsing

TOKEN = re.compile(r"""\s*(?:(?P<number>\d+(?:\.\d+)?(?:[smhd](?![\w]))?)|(?P<string>"(?:\\.|[^"\\])*")
                   |(?P<var>\$\w+)|(?P<ident>[A-Za-z_:][\w:]*)|(?P<op>=~|!=|!~|[=(){}\[\],*/+-]))""", re.X)
DURATION = {"s": 1, "m": 60, "h": 3600, "d": 86400}
AGGREGATIONS = {"sum": sum, "min": min, "max": max, "avg": lambda v: sum(v) / len(v), "count": len}
MATCHERS = {
    "=": lambda value, want: value == want,
    "!=": lambda value, want: value != want,
    "=~": lambda value, want: re.fullmatch(want, value) is not None,
    "!~": lambda value, want: re.fullmatch(want, value) is None,
}
ARITHMETIC = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
    "/": lambda a, b: a / b if b else (math.nan if a == 0 else math.copysign(math.inf, a)),
}


def tokenize(text):
    tokens, position = [], 0
    while text[position:].strip():
        match = TOKEN.match(text, position)
        if not match:
            raise Unsupported(f"cannot read {text[position:position + 20]!r}")
        kind = match.lastgroup
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


class Parser:
    """Recursive descent over the tokens; the result is a tree of tuples that ``evaluate`` walks."""

    def __init__(self, text):
        self.tokens, self.index = tokenize(text), 0

    def peek(self):
        return self.tokens[self.index] if self.index < len(self.tokens) else (None, None)

    def take(self, value=None, kind=None):
        token = self.peek()
        if (value is not None and token[1] != value) or (kind is not None and token[0] != kind):
            raise Unsupported(f"expected {value or kind}, found {token[1]!r}")
        self.index += 1
        return token[1]

    def parse(self):
        tree = self.sum_expr()
        if self.peek()[0] is not None:
            raise Unsupported(f"unexpected {self.peek()[1]!r}")
        return tree

    def sum_expr(self):
        tree = self.product_expr()
        while self.peek()[1] in ("+", "-"):
            tree = ("binary", self.take(), tree, self.product_expr())
        return tree

    def product_expr(self):
        tree = self.term()
        while self.peek()[1] in ("*", "/"):
            tree = ("binary", self.take(), tree, self.term())
        return tree

    def term(self):
        kind, value = self.peek()
        if kind == "number":
            return ("number", float(self.take()))
        if value == "(":
            self.take("(")
            tree = self.sum_expr()
            self.take(")")
            return tree
        if kind != "ident":
            raise Unsupported(f"unexpected {value!r}")
        if value in AGGREGATIONS:
            return self.aggregation()
        if value in ("rate", "increase"):
            self.take()
            self.take("(")
            selector = self.selector()
            window = self.window()
            self.take(")")
            return (value, selector, window)
        if value == "histogram_quantile":
            self.take()
            self.take("(")
            quantile = float(self.take(kind="number"))
            self.take(",")
            tree = self.sum_expr()
            self.take(")")
            return ("histogram_quantile", quantile, tree)
        if self.index + 1 < len(self.tokens) and self.tokens[self.index + 1][1] == "(":
            raise Unsupported(f"function {value}() is not in the subset")
        return self.selector()

    def aggregation(self):
        operator, by = self.take(), None
        if self.peek()[1] == "by":
            by = self.labels()
        self.take("(")
        tree = self.sum_expr()
        self.take(")")
        if self.peek()[1] == "by" and by is None:
            by = self.labels()
        if self.peek()[1] == "without":
            raise Unsupported("'without' is not in the subset")
        return ("aggregate", operator, tuple(by or ()), tree)

    def labels(self):
        self.take()
        self.take("(")
        names = [self.take(kind="ident")]
        while self.peek()[1] == ",":
            self.take(",")
            names.append(self.take(kind="ident"))
        self.take(")")
        return names

    def selector(self):
        name, matchers = self.take(kind="ident"), []
        if self.peek()[1] == "{":
            self.take("{")
            while self.peek()[1] != "}":
                label = self.take(kind="ident")
                operator = self.take(kind="op")
                if operator not in MATCHERS:
                    raise Unsupported(f"matcher {operator!r}")
                matchers.append((label, operator, unquote(self.take(kind="string"))))
                if self.peek()[1] == ",":
                    self.take(",")
            self.take("}")
        return ("selector", name, tuple(matchers))

    def window(self):
        self.take("[")
        kind, value = self.peek()
        if kind == "var":
            self.take()
        else:
            value = self.take(kind="number")
            value = float(value[:-1]) * DURATION[value[-1]] if value[-1] in DURATION else float(value)
        self.take("]")
        return value


def unquote(literal):
    return re.sub(r"\\(.)", lambda match: {"n": "\n", "t": "\t"}.get(match.group(1), match.group(1)), literal[1:-1])


def parse(expr, variables=None):
    """Parse ``expr`` after replacing dashboard variables (``$service``: ``.*``, as Grafana's "All")."""
    for name, value in (variables or {"service": ".*"}).items():
        expr = expr.replace(f"${name}", value)
    return Parser(expr).parse()


# ---------------------------------------------------------------- evaluation

class Scrapes:
    """Scrapes over time: ``add(t, samples)`` with samples ``{(name, labels): value}``, labels a sorted tuple."""

    def __init__(self):
        self.times, self.samples = [], []

    def add(self, at, samples):
        self.times.append(at)
        self.samples.append(samples)

    def at(self, moment):
        index = max((i for i, t in enumerate(self.times) if t <= moment), default=None)
        return {} if index is None else self.samples[index]

    def window(self, moment, seconds):
        return [(t, s) for t, s in zip(self.times, self.samples, strict=True) if moment - seconds < t <= moment]


def parse_exposition(text, instance):
    """Prometheus text -> ``{(name, labels): value}``, each series labelled with ``instance`` like Prometheus does."""
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted({**sample.labels, "instance": instance}.items()))
            samples[(sample.name, labels)] = sample.value
    return samples


def selected(samples, selector):
    _, name, matchers = selector
    for (sample_name, labels), value in samples.items():
        if sample_name == name:
            found = dict(labels)
            if all(MATCHERS[op](found.get(label, ""), want) for label, op, want in matchers):
                yield labels, value


def counter_increase(points):
    """The increase over ``points`` [(t, value)], a drop being a counter reset (the process restarted)."""
    total = 0.0
    for (_, before), (_, after) in zip(points, points[1:], strict=False):
        total += after if after < before else after - before
    return total


def range_function(tree, scrapes, moment, variables):
    function, selector, window = tree
    seconds = variables[window] if isinstance(window, str) else window
    series = defaultdict(list)
    for at, samples in scrapes.window(moment, seconds):
        for labels, value in selected(samples, selector):
            series[labels].append((at, value))
    result = {}
    for labels, points in series.items():
        if len(points) < 2:
            continue
        increase = counter_increase(points)
        result[labels] = increase if function == "increase" else increase / (points[-1][0] - points[0][0])
    return result


def aggregate(tree, vector):
    _, operator, by, inner = tree
    if not isinstance(vector, dict):
        raise Unsupported(f"{operator} over a number")
    groups = defaultdict(list)
    for labels, value in vector.items():
        groups[tuple((k, v) for k, v in labels if k in by)].append(value)
    return {labels: AGGREGATIONS[operator](values) for labels, values in groups.items()}


def histogram_quantile(quantile, vector):
    """Prometheus's estimate: linear interpolation inside the bucket that holds the quantile's rank."""
    histograms = defaultdict(list)
    for labels, value in vector.items():
        found = dict(labels)
        if "le" in found:
            histograms[tuple((k, v) for k, v in labels if k != "le")].append((float(found["le"]), value))
    result = {}
    for labels, buckets in histograms.items():
        buckets.sort()
        total = buckets[-1][1]
        if buckets[-1][0] != math.inf or total <= 0:
            continue
        rank, lower, below = quantile * total, 0.0, 0.0
        for upper, count in buckets:
            if count >= rank:
                if upper == math.inf:
                    result[labels] = lower
                elif count == below:
                    result[labels] = upper
                else:
                    result[labels] = lower + (upper - lower) * (rank - below) / (count - below)
                break
            lower, below = upper, count
    return result


def binary(operator, left, right):
    apply = ARITHMETIC[operator]
    if not isinstance(left, dict) and not isinstance(right, dict):
        return apply(left, right)
    if not isinstance(left, dict):
        return {labels: apply(left, value) for labels, value in right.items()}
    if not isinstance(right, dict):
        return {labels: apply(value, right) for labels, value in left.items()}
    return {labels: apply(value, right[labels]) for labels, value in left.items() if labels in right}


def evaluate(tree, scrapes, moment, variables):
    """The value of ``tree`` at ``moment``: a number or ``{labels: value}`` (labels without the metric name)."""
    kind = tree[0]
    if kind == "number":
        return tree[1]
    if kind == "selector":
        return dict(selected(scrapes.at(moment), tree))
    if kind in ("rate", "increase"):
        return range_function(tree, scrapes, moment, variables)
    if kind == "aggregate":
        return aggregate(tree, evaluate(tree[3], scrapes, moment, variables))
    if kind == "histogram_quantile":
        return histogram_quantile(tree[1], evaluate(tree[2], scrapes, moment, variables))
    if kind == "binary":
        return binary(tree[1], evaluate(tree[2], scrapes, moment, variables),
                      evaluate(tree[3], scrapes, moment, variables))
    raise Unsupported(kind)


def query_range(expr, scrapes, rate_window):
    """``{labels: [(t, value)]}`` of ``expr`` at every scrape time, as Grafana asks Prometheus for a graph."""
    tree, series = parse(expr), defaultdict(list)
    start = scrapes.times[0] if scrapes.times else 0.0
    for moment in scrapes.times:
        variables = {"$__rate_interval": rate_window, "$__range": moment - start + 1e-9}
        value = evaluate(tree, scrapes, moment, variables)
        for labels, number in (value.items() if isinstance(value, dict) else [((), value)]):
            series[labels].append((moment, number))
    return dict(series)


def legend(template, labels):
    found = dict(labels)
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda match: found.get(match.group(1), ""), template or "") or str(found)
