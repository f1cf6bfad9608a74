#!/usr/bin/python3
"""Proves, for every NANP prefix of six national digits, whether libphonenumber's validity of a
ten-digit national number depends only on those six digits, and writes the C table declared in
phone_nanp.h: ranges of prefixes that are all valid, all invalid, or not proved ("slow": phone.c
asks libphonenumber for those).

The input is dump_nanp's listing of the +1 regions' metadata, taken from the installed C++
library. IsValidNumber for country code 1 is, in libphonenumber 8.12's terms:

    region = the first region R, in the listed order, such that
             R has leading digits and they match at the start of the number, or
             R has none and GetNumberTypeHelper(number, R) != UNKNOWN
    valid  = a region was found and GetNumberTypeHelper(number, region) != UNKNOWN
    GetNumberTypeHelper: general_desc must match, then any type desc in the listed order
             (mobile only when same_mobile_and_fixed_line_pattern is false)
    a desc matches: its possible lengths (when any are listed) include 10, and its pattern
             matches the whole number

Every pattern is parsed with Python's own regular-expression parser (sre_parse) into an automaton
over the digits. After six digits, the automaton of each pattern is in a set of states; counting
the four-digit suffixes that set accepts tells whether the pattern holds for all of them, none,
or some. The formula above is then evaluated on those answers in the library's order; a prefix
is proved only if every answer the evaluation consults is "all" or "none", so the outcome is the
same for every suffix. Anything this script does not understand (a construct in a pattern, a
parsing rule that could touch ten-digit numbers) proves nothing: the table comes out empty and
every number takes the slow path.

    gen_nanp.py DUMP.txt OUTPUT.c
"""
import os
import sys

try:
    import re._parser as sre_parse  # Python 3.11+
    from re import _constants as sre_constants
except ImportError:
    import sre_constants
    import sre_parse

NSN_DIGITS = 10
PREFIX_DIGITS = 6
DIGITS = range(10)
ALL_DIGITS = (1 << 10) - 1
TYPES = ["premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan", "voicemail", "fixed_line"]


class Unsupported(Exception):
    pass


class Nfa:
    """Thompson automaton over the ten digits: `moves[s]` lists (digit mask, target), `eps[s]` the
    empty moves."""

    def __init__(self):
        self.moves, self.eps = [], []

    def state(self):
        self.moves.append([])
        self.eps.append([])
        return len(self.moves) - 1

    def build(self, items, start):
        """Appends the parsed sequence `items` after `start`; returns its end state."""
        end = start
        for op, arg in items:
            end = self.build_one(op, arg, end)
        return end

    def build_one(self, op, arg, start):
        if op == sre_constants.LITERAL:
            return self.char(start, self.mask_literal(arg))
        if op == sre_constants.IN:
            return self.char(start, self.mask_in(arg))
        if op == sre_constants.CATEGORY and arg == sre_constants.CATEGORY_DIGIT:
            return self.char(start, ALL_DIGITS)
        if op == sre_constants.SUBPATTERN:
            return self.build(arg[-1], start)
        if op == sre_constants.BRANCH:
            end = self.state()
            for alternative in arg[1]:
                self.eps[self.build(alternative, start)].append(end)
            return end
        if op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT):
            low, high, body = arg
            end = start
            for _ in range(low):
                end = self.build(body, end)
            if high == sre_constants.MAXREPEAT:
                loop = self.state()
                self.eps[end].append(loop)
                self.eps[self.build(body, loop)].append(loop)
                return loop
            for _ in range(high - low):
                following = self.build(body, end)
                self.eps[end].append(following)
                end = following
            return end
        raise Unsupported(f"{op} {arg}")

    def char(self, start, mask):
        end = self.state()
        self.moves[start].append((mask, end))
        return end

    @staticmethod
    def mask_literal(code):
        return 1 << (code - 48) if 48 <= code <= 57 else 0

    @staticmethod
    def mask_in(items):
        mask, negate = 0, False
        for op, arg in items:
            if op == sre_constants.NEGATE:
                negate = True
            elif op == sre_constants.LITERAL:
                mask |= Nfa.mask_literal(arg)
            elif op == sre_constants.RANGE:
                for code in range(max(arg[0], 48), min(arg[1], 57) + 1):
                    mask |= 1 << (code - 48)
            elif op == sre_constants.CATEGORY and arg == sre_constants.CATEGORY_DIGIT:
                mask = ALL_DIGITS
            else:
                raise Unsupported(f"IN {op} {arg}")
        return ALL_DIGITS & ~mask if negate else mask


class Pattern:
    """One pattern as a set-of-states automaton, with memoised moves and suffix counts."""

    def __init__(self, text, prefix_match=False):
        self.nfa = Nfa()
        start = self.nfa.state()
        end = self.nfa.build(sre_parse.parse(text), start)
        if prefix_match:  # Consume(): the match may end anywhere, the digits after it are free
            end = self.nfa.build_one(sre_constants.MAX_REPEAT,
                                     (0, sre_constants.MAXREPEAT, [(sre_constants.CATEGORY, sre_constants.CATEGORY_DIGIT)]), end)
        self.accept = end
        self.start = self.closure({start})
        self.steps, self.counts = {}, {}

    def closure(self, states):
        todo, seen = list(states), set(states)
        while todo:
            for t in self.nfa.eps[todo.pop()]:
                if t not in seen:
                    seen.add(t)
                    todo.append(t)
        return frozenset(seen)

    def step(self, states, digit):
        key = (states, digit)
        if key not in self.steps:
            self.steps[key] = self.closure({t for s in states for mask, t in self.nfa.moves[s] if mask >> digit & 1})
        return self.steps[key]

    def count(self, states, length):
        """How many digit strings of `length` lead from `states` to acceptance."""
        key = (states, length)
        if key not in self.counts:
            if length == 0:
                self.counts[key] = 1 if self.accept in states else 0
            elif not states:
                self.counts[key] = 0
            else:
                self.counts[key] = sum(self.count(self.step(states, d), length - 1) for d in DIGITS)
        return self.counts[key]


NEVER = None  # a desc that cannot match ten digits


def read_dump(path):
    regions, info = [], {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            kind, region = fields[0], fields[1]
            if kind == "region":
                regions.append(region)
                info[region] = {"descs": {}, "leading": None}
            elif kind == "leading":
                info[region]["leading"] = fields[2]
            elif kind == "desc":
                info[region]["descs"][fields[2]] = (fields[3], fields[4])
            elif kind == "same_mobile_fixed":
                info[region]["same_mobile_fixed"] = fields[2] == "1"
            elif kind == "parsing":
                info[region]["parsing"] = fields[2:5]
    return regions, info


def desc_pattern(lengths, text):
    """A desc as the C++ IsNumberMatchingDesc sees ten digits: NEVER, or a Pattern."""
    if lengths != "-" and str(NSN_DIGITS) not in lengths.split(","):
        return NEVER
    return Pattern(text) if text else NEVER


def check_parsing(regions, info):
    """The fast path reads "NXXNXXXXXX", "1NXXNXXXXXX" (default region US) and "+1NXXNXXXXXX" as
    national number NXXNXXXXXX of +1. That holds while US's national prefix for parsing is "1"
    with no transform (a number starting 2-9 keeps its digits), its international prefix is
    "011", and no general desc allows 11 digits (so "1" + 10 digits is TOO_LONG as it stands and
    the leading 1 is taken as the country code)."""
    if not regions or regions[0] != "US":
        raise Unsupported("US is not the main +1 region")
    prefix, transform, idd = info["US"]["parsing"]
    if prefix != "1" or transform != "" or idd != "011":
        raise Unsupported(f"US parsing rules changed: {prefix!r} {transform!r} {idd!r}")
    lengths = info["US"]["descs"]["general"][0]
    if lengths == "-" or max(int(n) for n in lengths.split(",")) >= NSN_DIGITS + 1:
        raise Unsupported(f"US general lengths {lengths}")


ALL, NONE, MIXED = "all", "none", "mixed"


def classify(pattern, states, remaining):
    if pattern is NEVER:
        return NONE
    n = pattern.count(states, remaining)
    return ALL if n == 10 ** remaining else NONE if n == 0 else MIXED


class Proof:
    def __init__(self, regions, info):
        self.regions = regions
        # Per region: leading pattern (or absent), general, the types in order, mobile.
        self.plan = []
        for r in regions:
            descs = info[r]["descs"]
            types = [desc_pattern(*descs[t]) for t in TYPES]
            mobile = NEVER if info[r]["same_mobile_fixed"] else desc_pattern(*descs["mobile"])
            leading = Pattern(info[r]["leading"], prefix_match=True) if info[r]["leading"] else None
            self.plan.append((leading, desc_pattern(*descs["general"]), types + [mobile]))
        self.patterns = [p for leading, general, types in self.plan for p in [leading, general, *types]
                         if p is not None and p is not NEVER]
        self.ranges = []  # (first prefix, last prefix, "valid" | "invalid" | "slow")

    def evaluate(self, states, remaining):
        """valid / invalid for every number under this node, or MIXED if not decided yet."""
        def answer(p):
            return NONE if p is NEVER else classify(p, states[id(p)], remaining)

        def known_type(general, types):
            g = answer(general)
            if g != ALL:
                return g  # NONE: UNKNOWN type; MIXED: undecided
            for t in types:
                a = answer(t)
                if a != NONE:
                    return a
            return NONE

        for leading, general, types in self.plan:
            if leading is not None:
                lead = answer(leading)
                if lead == MIXED:
                    return MIXED
                if lead == ALL:
                    t = known_type(general, types)
                    return MIXED if t == MIXED else ("valid" if t == ALL else "invalid")
                continue
            t = known_type(general, types)
            if t == MIXED:
                return MIXED
            if t == ALL:
                return "valid"
        return "invalid"

    def walk(self, prefix, depth, states):
        remaining = NSN_DIGITS - depth
        outcome = self.evaluate(states, remaining)
        if outcome == MIXED and depth == PREFIX_DIGITS:
            outcome = "slow"
        if outcome != MIXED:
            width = 10 ** (PREFIX_DIGITS - depth)
            self.add(prefix * width, (prefix + 1) * width - 1, outcome)
            return
        for d in DIGITS:
            if depth == 0 and d < 2:
                continue  # national numbers starting 0 or 1 never take the fast path
            self.walk(prefix * 10 + d, depth + 1, {id(p): p.step(states[id(p)], d) for p in self.patterns})

    def add(self, first, last, outcome):
        if self.ranges and self.ranges[-1][2] == outcome and self.ranges[-1][1] + 1 == first:
            self.ranges[-1] = (self.ranges[-1][0], last, outcome)
        else:
            self.ranges.append((first, last, outcome))

    def run(self):
        self.walk(0, 0, {id(p): p.start for p in self.patterns})
        return self.ranges


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: gen_nanp.py DUMP.txt OUTPUT.c")
    regions, info = read_dump(sys.argv[1])
    try:
        check_parsing(regions, info)
        ranges = Proof(regions, info).run()
        why = ""
    except (Unsupported, KeyError, sre_constants.error) as e:
        print(f"gen_nanp.py: nothing proved, every NANP number takes the slow path: {e}", file=sys.stderr)
        ranges, why = [], f" Nothing proved: {e}."
    counts = {o: sum(last - first + 1 for first, last, oo in ranges if oo == o) for o in ("valid", "invalid", "slow")}
    names = {"valid": "PHONE_NANP_VALID", "invalid": "PHONE_NANP_INVALID", "slow": "PHONE_NANP_SLOW"}
    out = [
        "/* Generated by phone/gen_nanp.py from the installed libphonenumber's +1 metadata "
        f"({', '.join(regions)}): of the six-digit prefixes 200000-999999, {counts['valid']} proved valid, "
        f"{counts['invalid']} proved invalid, {counts['slow']} not proved (slow path).{why} Do not edit. */",
        '#include "phone/phone_nanp.h"',
        "",
        "const phone_nanp_range_t phone_nanp_ranges[] = {",
        *(f"    {{{first}, {names[outcome]}}}," for first, last, outcome in ranges),
        "    {1000000, PHONE_NANP_SLOW},",
        "};",
        "",
        f"const size_t phone_nanp_range_count = {len(ranges)};",
        "",
    ]
    with open(sys.argv[2] + ".tmp", "w", encoding="ascii") as f:
        f.write("\n".join(out))
    os.replace(sys.argv[2] + ".tmp", sys.argv[2])


if __name__ == "__main__":
    main()
