#!/usr/bin/env python3
"""Offline schema check of Terraform modules against the hashicorp/aws provider 6.25.0.

Usage: check.py [--schema-cache DIR] MODULE_DIR [MODULE_DIR ...]

For every *.tf file of each module directory (not recursive, like Terraform) it checks
that each `resource "aws_..."` and `data "aws_..."` type exists in the provider, that
every argument and nested block (also inside `dynamic "x" { content { ... } }`) exists
where it is written, that blocks are written as blocks and arguments as arguments, that
a block allowing one instance is not repeated, and that every required argument and
required block is set. It also checks `provider "aws"` blocks, the inputs of `module`
calls with a local source against the called module's variables, and that
`required_providers` pins aws to a constraint whose minimum is 6.25.0, the schema checked.

Prints one line per problem, `FILE:LINE: ADDRESS: message; did you mean "..."?`, then a
summary line per directory; exits 1 if there was any problem, 2 on a usage error.
The schema comes from schema_build.py (cached; see README.md).
"""

import argparse
import difflib
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import schema_build  # noqa: E402

try:
    import hcl2
    from hcl2.rules.base import AttributeRule, BlockRule
    from hcl2.utils import SerializationOptions
except ImportError:  # pragma: no cover - depends on the environment
    hcl2 = None

PROVIDER_VERSION = schema_build.PROVIDER_VERSION
PROVIDER_SOURCES = {"hashicorp/aws", "registry.terraform.io/hashicorp/aws"}
RESOURCE_META_ATTRS = {"count", "for_each", "depends_on", "provider"}
RESOURCE_META_BLOCKS = {"lifecycle", "provisioner", "connection"}
DATA_META_BLOCKS = {"lifecycle"}
MODULE_META_ATTRS = {"source", "version", "count", "for_each", "depends_on", "providers"}
PROVIDER_META_ATTRS = {"alias", "version"}
DYNAMIC_ATTRS = {"for_each", "iterator", "labels"}


# ---------------------------------------------------------------------------------------
# HCL: a small tree of our own, built from python-hcl2's typed tree (which keeps the
# difference between `x { }` and `x = { }`, and the line numbers).
# ---------------------------------------------------------------------------------------

class Attr:
    def __init__(self, name, line, expr, file):
        self.name, self.line, self._expr, self.file = name, line, expr, file

    @property
    def value(self):
        """The value as python-hcl2 serializes it: literals as Python values, strings
        unquoted, other expressions as "${...}" strings."""
        try:
            return self._expr.serialize(_SER_OPTS)
        except Exception:  # an expression the serializer cannot render: not a literal
            return "${...}"


class Block:
    def __init__(self, type_, labels, line, body, file):
        self.type, self.labels, self.line, self.body, self.file = type_, labels, line, body, file

    def attrs(self):
        return [n for n in self.body if isinstance(n, Attr)]

    def blocks(self, type_=None):
        return [n for n in self.body if isinstance(n, Block) and (type_ is None or n.type == type_)]


_SER_OPTS = None


def _line(node):
    meta = getattr(node, "_meta", None)
    return getattr(meta, "line", None) if meta is not None and not getattr(meta, "empty", False) else None


def _convert_body(body, file):
    out = []
    for child in body.children:
        if isinstance(child, BlockRule):
            labels = [str(label.serialize(_SER_OPTS)) for label in child.labels]
            out.append(Block(labels[0], labels[1:], _line(child), _convert_body(child.body, file), file))
        elif isinstance(child, AttributeRule):
            out.append(Attr(str(child.identifier.serialize(_SER_OPTS)), _line(child), child.expression, file))
    return out


_PARSED = {}


def parse_file(path):
    """Parses one .tf file into a list of Attr and Block (memoized: a module called from
    several example directories is parsed once)."""
    global _SER_OPTS
    if _SER_OPTS is None:
        _SER_OPTS = SerializationOptions(with_comments=False, strip_string_quotes=True)
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_mtime_ns, st.st_size)
    if key not in _PARSED:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        tree = hcl2.parses(text, discard_comments=True)
        _PARSED[key] = _convert_body(tree.body, path)
    nodes = _PARSED[key]
    return nodes if nodes and nodes[0].file == path else [_refile(n, path) for n in nodes]


def _refile(node, path):
    if isinstance(node, Attr):
        return Attr(node.name, node.line, node._expr, path)
    return Block(node.type, node.labels, node.line, [_refile(n, path) for n in node.body], path)


# ---------------------------------------------------------------------------------------
# Version constraints
# ---------------------------------------------------------------------------------------

_CONSTRAINT = re.compile(r"^\s*(~>|>=|<=|!=|=|>|<)?\s*v?(\d+(?:\.\d+){0,2})(?:-[0-9A-Za-z.-]+)?\s*$")


def _vtuple(text):
    parts = [int(p) for p in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts))), len(parts)


def parse_constraint(text):
    """Parses a Terraform version constraint into [(op, version_tuple, n_parts)];
    raises ValueError for what it does not understand."""
    out = []
    for piece in text.split(","):
        m = _CONSTRAINT.match(piece)
        if not m:
            raise ValueError("cannot parse version constraint %r" % piece.strip())
        v, n = _vtuple(m.group(2))
        out.append((m.group(1) or "=", v, n))
    return out


def _satisfies(version, op, v, n):
    if op == "=":
        return version == v
    if op == "!=":
        return version != v
    if op == ">":
        return version > v
    if op == ">=":
        return version >= v
    if op == "<":
        return version < v
    if op == "<=":
        return version <= v
    # ~>: only the rightmost given component may increase
    if version < v:
        return False
    if n == 1:
        return version[0] == v[0]
    return version[: n - 1] == v[: n - 1]


def admits(constraint, version):
    return all(_satisfies(version, op, v, n) for op, v, n in constraint)


def check_version_constraint(text):
    """Returns None when `text` admits PROVIDER_VERSION, no lower version and no 7.x,
    else a reason."""
    try:
        constraint = parse_constraint(text)
    except ValueError as e:
        return str(e)
    target, _ = _vtuple(PROVIDER_VERSION)
    if not admits(constraint, target):
        return "does not admit %s, the version whose schema is checked" % PROVIDER_VERSION
    lower = [v for op, v, _ in constraint if op in ("=", ">=", ">", "~>")]
    if not lower or max(lower) < target:
        return "admits versions below %s; its minimum must be %s (e.g. \"~> 6.25\")" % (
            PROVIDER_VERSION, PROVIDER_VERSION)
    next_major = (target[0] + 1, 0, 0)
    upper = []  # (bound, inclusive)
    for op, v, n in constraint:
        if op in ("=", "<="):
            upper.append((v, True))
        elif op == "<":
            upper.append((v, False))
        elif op == "~>":
            upper.append(((v[0] + 1, 0, 0) if n <= 2 else (v[0], v[1] + 1, 0), False))
    if not any(bound < next_major or (bound == next_major and not inclusive) for bound, inclusive in upper):
        return "admits %d.0.0 or later, whose schema was not checked; bound it (e.g. \"~> 6.25\")" % (
            next_major[0])
    return None


# ---------------------------------------------------------------------------------------
# The checker
# ---------------------------------------------------------------------------------------

class Problem:
    def __init__(self, file, line, address, message):
        self.file, self.line, self.address, self.message = file, line, address, message

    def __str__(self):
        where = "%s:%s" % (self.file, self.line) if self.line else self.file
        return "%s: %s: %s" % (where, self.address, self.message)


def _suggest(name, candidates):
    cands = sorted(set(candidates))
    close = difflib.get_close_matches(name, cands, n=3, cutoff=0.75)
    if not close:
        close = difflib.get_close_matches(name, cands, n=1, cutoff=0.5)
    return close


def _did_you_mean(close):
    if not close:
        return ""
    return "; did you mean %s?" % " or ".join('"%s"' % c for c in close)


def _find_paths(schema_block, name, prefix=(), depth=0):
    """Where `name` is an argument or block deeper in the schema: [(path tuple, kind)]."""
    found = []
    if schema_block is None or depth > 12:
        return found
    for bname, b in sorted(schema_block["blocks"].items()):
        inner = b["block"]
        if inner is None:
            continue
        if name in inner["attributes"]:
            found.append((prefix + (bname,), "argument"))
        if name in inner["blocks"]:
            found.append((prefix + (bname,), "block"))
        found.extend(_find_paths(inner, name, prefix + (bname,), depth + 1))
    for aname, a in sorted(schema_block["attributes"].items()):
        if a["kind"] == "object_list" and a.get("block"):
            if name in a["block"]["attributes"]:
                found.append((prefix + (aname,), "argument"))
    return found


class ModuleChecker:
    def __init__(self, schema, directory, display_dir=None):
        self.schema = schema
        self.dir = directory
        self.display_dir = display_dir if display_dir is not None else os.path.normpath(directory)
        self.problems = []
        self.notes = []
        self.n_resources = 0
        self.n_data = 0
        self.n_skipped = 0
        self.constraint = None

    # -- reporting ---------------------------------------------------------------------
    def _rel(self, file):
        return os.path.join(self.display_dir, os.path.basename(file))

    def problem(self, node_or_file, line, address, message):
        file = node_or_file.file if hasattr(node_or_file, "file") else node_or_file
        self.problems.append(Problem(self._rel(file), line, address, message))

    # -- entry point -------------------------------------------------------------------
    def run(self):
        files = sorted(f for f in os.listdir(self.dir) if f.endswith(".tf"))
        json_files = sorted(f for f in os.listdir(self.dir) if f.endswith(".tf.json"))
        if json_files:
            self.notes.append("not checked (JSON syntax): %s" % ", ".join(json_files))
        if not files:
            self.problems.append(Problem(self.display_dir, None, "module", "no *.tf files"))
            return self
        top = []
        for f in files:
            path = os.path.join(self.dir, f)
            if f == "override.tf" or f.endswith("_override.tf"):
                self.notes.append("not checked (override file): %s" % f)
                continue
            try:
                top.extend(parse_file(path))
            except Exception as e:  # lark's errors carry line and column
                msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                self.problems.append(Problem(self._rel(path), getattr(e, "line", None), "hcl",
                                             "cannot parse: %s" % msg))
        self.check_top(top)
        return self

    def check_top(self, top):
        uses_aws = False
        for block in top:
            if block.type == "check":
                for inner in block.blocks("data"):
                    uses_aws |= self.check_data(inner)
            if block.type == "resource":
                uses_aws |= self.check_resource(block)
            elif block.type == "data":
                uses_aws |= self.check_data(block)
            elif block.type == "provider" and block.labels[:1] == ["aws"]:
                self.check_provider(block)
            elif block.type == "module" and block.labels:
                self.check_module_call(block)
            elif block.type == "ephemeral":
                self.notes.append("not checked (no schema for ephemeral resources): ephemeral %s"
                                  % ".".join(block.labels))
        self.check_required_providers(top, uses_aws)

    # -- resources and data sources ----------------------------------------------------
    def _split_type(self, block, kind):
        if len(block.labels) != 2:
            self.problem(block, block.line, kind, "a %s block needs two labels, type and name" % kind)
            return None, None
        return block.labels

    def check_resource(self, block):
        rtype, name = self._split_type(block, "resource")
        if rtype is None:
            return False
        address = "%s.%s" % (rtype, name)
        schema = self.schema["resources"].get(rtype)
        if schema is None:
            if not self._unknown_type(block, rtype, address, self.schema["resources"],
                                      self.schema["data_sources"], "resource", "data source"):
                return False
            return True
        self.n_resources += 1
        self.check_body(block, schema, address, (), RESOURCE_META_ATTRS, RESOURCE_META_BLOCKS,
                        "resource %s" % rtype)
        return True

    def check_data(self, block):
        dtype, name = self._split_type(block, "data")
        if dtype is None:
            return False
        address = "data.%s.%s" % (dtype, name)
        schema = self.schema["data_sources"].get(dtype)
        if schema is None:
            if not self._unknown_type(block, dtype, address, self.schema["data_sources"],
                                      self.schema["resources"], "data source", "resource"):
                return False
            return True
        self.n_data += 1
        self.check_body(block, schema, address, (), RESOURCE_META_ATTRS, DATA_META_BLOCKS,
                        "data source %s" % dtype)
        return True

    def _unknown_type(self, block, tname, address, same, other, kind, other_kind):
        """Reports an unknown aws type; returns False for a type of another provider."""
        if not tname.startswith("aws_"):
            # Another provider's type (random_id, terraform_data...) is not checked, unless
            # it looks like a misspelt aws type (awss_ecs_service, aws-ecs_service).
            close = difflib.get_close_matches(tname, sorted(same), n=1, cutoff=0.9)
            if close:
                self.problem(block, block.line, address, "unknown %s type \"%s\"%s"
                             % (kind, tname, _did_you_mean(close)))
            else:
                self.n_skipped += 1
            return False
        if tname in other:
            self.problem(block, block.line, address, "\"%s\" is a %s of hashicorp/aws %s, not a %s"
                         "; did you mean `%s \"%s\"`?" % (tname, other_kind, PROVIDER_VERSION, kind,
                                                          "data" if other_kind == "data source" else "resource",
                                                          tname))
            return True
        self.problem(block, block.line, address, "unknown %s type \"%s\" in hashicorp/aws %s%s"
                     % (kind, tname, PROVIDER_VERSION, _did_you_mean(_suggest(tname, same))))
        return True

    # -- bodies ------------------------------------------------------------------------
    def check_body(self, block, schema, address, path, meta_attrs, meta_blocks, what,
                   dynamic_present=None, root=None):
        """Checks `block`'s body against `schema` (a compact BLOCK); `path` is the tuple of
        nested block names from the resource to here, `what` how to name the container."""
        root = root if root is not None else schema
        here = " in %s" % (".".join(path) if path else what)
        attrs, blocks = schema["attributes"], schema["blocks"]
        seen_attrs = {}
        block_counts = {}
        present_blocks = set(dynamic_present or ())
        for node in block.body:
            if isinstance(node, Attr):
                if node.name in seen_attrs:
                    self.problem(node, node.line, address, "argument \"%s\" is set twice%s (first at line %s)"
                                 % (node.name, here, seen_attrs[node.name].line))
                    continue
                seen_attrs[node.name] = node
                if node.name in meta_attrs:
                    continue
                if node.name in attrs:
                    if attrs[node.name]["required"] and node.value is None:
                        self.problem(node, node.line, address, "required argument \"%s\"%s is set to null"
                                     % (node.name, here))
                    continue
                if node.name in blocks:
                    self.problem(node, node.line, address, "\"%s\"%s is a block, not an argument: write "
                                 "`%s { ... }` (or a dynamic \"%s\" block) instead of `%s = ...`"
                                 % (node.name, here, node.name, node.name, node.name))
                    present_blocks.add(node.name)
                    continue
                self._unknown(node, "argument", address, path, schema, root, here)
            else:
                if node.type in meta_blocks:
                    continue
                if node.type == "dynamic":
                    self.check_dynamic(node, schema, address, path, here, root, present_blocks)
                    continue
                if node.type in blocks:
                    present_blocks.add(node.type)
                    block_counts.setdefault(node.type, []).append(node)
                    inner = blocks[node.type]["block"]
                    if node.labels:
                        self.problem(node, node.line, address, "block \"%s\"%s takes no labels"
                                     % (node.type, here))
                    if inner is not None:
                        self.check_body(node, inner, address, path + (node.type,), (), (), what, root=root)
                    continue
                if node.type in attrs:
                    a = attrs[node.type]
                    if a["kind"] == "object_list" and a.get("block"):
                        # "attributes as blocks": Terraform accepts `ingress { ... }` for a
                        # list-of-objects attribute, each block being one element.
                        present_blocks.add(node.type)
                        self.check_body(node, a["block"], address, path + (node.type,), (), (), what,
                                        root=root, dynamic_present=None)
                        seen_attrs.setdefault(node.type, node)
                        continue
                    self.problem(node, node.line, address, "\"%s\"%s is an argument, not a block: write "
                                 "`%s = ...` instead of `%s { ... }`" % (node.type, here, node.type, node.type))
                    seen_attrs.setdefault(node.type, node)
                    continue
                self._unknown(node, "block", address, path, schema, root, here, name=node.type)
        for bname, nodes in block_counts.items():
            if blocks[bname]["max_items"] == 1 and len(nodes) > 1:
                self.problem(nodes[1], nodes[1].line, address, "too many \"%s\" blocks%s: at most one is "
                             "allowed (first at line %s)" % (bname, here, nodes[0].line))
        for aname, a in sorted(attrs.items()):
            # present_blocks: a list-of-objects attribute may be given as (dynamic) blocks
            if a["required"] and aname not in seen_attrs and aname not in present_blocks:
                self.problem(block, block.line, address, "missing required argument \"%s\"%s"
                             % (aname, here))
        for bname, b in sorted(blocks.items()):
            if b["min_items"] >= 1 and bname not in present_blocks:
                self.problem(block, block.line, address, "missing required block \"%s\"%s (at least %d)"
                             % (bname, here, b["min_items"]))

    def check_dynamic(self, node, schema, address, path, here, root, present_blocks):
        if len(node.labels) != 1:
            self.problem(node, node.line, address, "a dynamic block needs one label, the block type%s" % here)
            return
        target = node.labels[0]
        blocks, attrs = schema["blocks"], schema["attributes"]
        if target in blocks:
            inner = blocks[target]["block"]
        elif target in attrs and attrs[target]["kind"] == "object_list":
            inner = attrs[target].get("block")
        elif target in attrs:
            self.problem(node, node.line, address, "dynamic \"%s\"%s: \"%s\" is an argument, not a block; "
                         "set it with an expression (`%s = [for ...]`)" % (target, here, target, target))
            return
        else:
            self._unknown(node, "block", address, path, schema, root, here + " (dynamic block)",
                          name=target)
            return
        present_blocks.add(target)
        for a in node.attrs():
            if a.name not in DYNAMIC_ATTRS:
                self.problem(a, a.line, address, "unknown argument \"%s\" in dynamic \"%s\"%s: a dynamic block "
                             "takes for_each, iterator, labels and one content block; did you mean to put it "
                             "inside content { }?" % (a.name, target, here))
        if "for_each" not in {a.name for a in node.attrs()}:
            self.problem(node, node.line, address, "dynamic \"%s\"%s has no for_each" % (target, here))
        contents = node.blocks("content")
        for b in node.blocks():
            if b.type != "content":
                self.problem(b, b.line, address, "unexpected block \"%s\" in dynamic \"%s\"%s; did you mean to "
                             "put it inside content { }?" % (b.type, target, here))
        if len(contents) != 1:
            self.problem(node, node.line, address, "dynamic \"%s\"%s needs exactly one content block, has %d"
                         % (target, here, len(contents)))
        if contents and inner is not None:
            self.check_body(contents[0], inner, address, path + (target,), (), (), "", root=root)

    def _unknown(self, node, kind, address, path, schema, root, here, name=None):
        name = name or node.name
        msg = "unknown %s \"%s\"%s" % (kind, name, here)
        # The exact name elsewhere in this resource: written at the wrong nesting level.
        elsewhere = [(p, k) for p, k in _find_paths(root, name) if p != path]
        if path and (name in root["attributes"] or name in root["blocks"]):
            elsewhere.insert(0, ((), "argument" if name in root["attributes"] else "block"))
        names_here = list(schema["attributes"]) + list(schema["blocks"])
        strong = difflib.get_close_matches(name, sorted(names_here), n=2, cutoff=0.85)
        if strong:
            msg += _did_you_mean(strong)
        elif elsewhere:
            elsewhere.sort(key=lambda e: (len(e[0]), e[0]))
            p, k = elsewhere[0]
            spot = "`%s { }`" % ".".join(p) if p else "the top level of the resource"
            msg += "; \"%s\" is %s of %s%s: did you mean to write it %s?" % (
                name, "an argument" if k == "argument" else "a block", spot,
                " (and of %d other blocks)" % (len(elsewhere) - 1) if len(elsewhere) > 1 else "",
                "inside " + spot if p else "at the top level")
        else:
            close = _suggest(name, names_here)
            msg += _did_you_mean(close) if close else " (no similar name here)"
        self.problem(node, node.line, address, msg)

    # -- provider, module calls, required_providers ---------------------------------
    def check_provider(self, block):
        alias = [a.value for a in block.attrs() if a.name == "alias"]
        address = "provider.aws" + (".%s" % alias[0] if alias and isinstance(alias[0], str) else "")
        self.check_body(block, self.schema["provider_config"], address, (), PROVIDER_META_ATTRS, set(),
                        "provider \"aws\"")

    def check_module_call(self, block):
        address = "module.%s" % block.labels[0]
        source = [a for a in block.attrs() if a.name == "source"]
        if not source:
            self.problem(block, block.line, address, "missing required argument \"source\"")
            return
        src = source[0].value
        if not isinstance(src, str) or not (src.startswith("./") or src.startswith("../")):
            return  # a registry or remote module: its variables are not known here
        target = os.path.normpath(os.path.join(self.dir, src))
        if not os.path.isdir(target):
            self.problem(source[0], source[0].line, address, "module source \"%s\" is not a directory" % src)
            return
        variables = {}
        for f in sorted(os.listdir(target)):
            if not f.endswith(".tf"):
                continue
            try:
                nodes = parse_file(os.path.join(target, f))
            except Exception:
                continue  # reported when that module itself is checked
            for v in nodes:
                if isinstance(v, Block) and v.type == "variable" and v.labels:
                    variables[v.labels[0]] = any(a.name == "default" for a in v.attrs())
        given = set()
        for a in block.attrs():
            given.add(a.name)
            if a.name in MODULE_META_ATTRS or a.name in variables:
                continue
            self.problem(a, a.line, address, "unknown module input \"%s\" (no variable \"%s\" in %s)%s"
                         % (a.name, a.name, src, _did_you_mean(_suggest(a.name, variables))))
        for b in block.blocks():
            if b.type != "lifecycle":
                self.problem(b, b.line, address, "unexpected block \"%s\" in a module call" % b.type)
        for name, has_default in sorted(variables.items()):
            if not has_default and name not in given:
                self.problem(block, block.line, address, "missing required module input \"%s\" (variable "
                             "without default in %s)" % (name, src))

    def check_required_providers(self, top, uses_aws):
        entries = []
        for block in top:
            if block.type != "terraform":
                continue
            for rp in block.blocks("required_providers"):
                for a in rp.attrs():
                    if a.name == "aws":
                        entries.append(a)
        if not entries:
            if uses_aws:
                self.problems.append(Problem(self.display_dir, None, "terraform.required_providers",
                                             "aws is not declared; add `aws = { source = \"hashicorp/aws\", "
                                             "version = \"~> %s\" }` to pin the schema that is checked"
                                             % PROVIDER_VERSION.rsplit(".", 1)[0]))
            return
        for a in entries:
            value = a.value
            if isinstance(value, str) and not value.startswith("${"):
                version, source = value, None  # legacy `aws = "~> 6.25"`
            elif isinstance(value, dict):
                version, source = value.get("version"), value.get("source")
            else:
                self.problem(a, a.line, "terraform.required_providers.aws",
                             "cannot read the aws requirement; write it as an object literal")
                continue
            if source is not None and str(source).lower() not in PROVIDER_SOURCES:
                self.problem(a, a.line, "terraform.required_providers.aws",
                             "source is \"%s\", not hashicorp/aws: this checker knows only hashicorp/aws" % source)
            if not isinstance(version, str) or version.startswith("${"):
                self.problem(a, a.line, "terraform.required_providers.aws",
                             "no literal version constraint; pin it, e.g. version = \"~> %s\""
                             % PROVIDER_VERSION.rsplit(".", 1)[0])
                continue
            reason = check_version_constraint(version)
            if reason:
                self.problem(a, a.line, "terraform.required_providers.aws",
                             "version constraint \"%s\" %s" % (version, reason))
            else:
                self.constraint = version

    def summary(self):
        parts = "checked %s, %s against %s %s" % (
            _plural(self.n_resources, "resource"), _plural(self.n_data, "data source"),
            schema_build.PROVIDER, PROVIDER_VERSION)
        if self.constraint:
            parts += " (required_providers: \"%s\")" % self.constraint
        if self.n_skipped:
            parts += ", %d of other providers not checked" % self.n_skipped
        status = "ok" if not self.problems else _plural(len(self.problems), "problem")
        return "%s: %s: %s" % (self.display_dir, parts, status)


def _plural(n, word):
    return "%d %s%s" % (n, word, "" if n == 1 else "s")


def check_dir(schema, directory, display_dir=None):
    return ModuleChecker(schema, directory, display_dir).run()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dirs", nargs="+", metavar="MODULE_DIR")
    parser.add_argument("--schema-cache", default=None,
                        help="folder of the cached schema (default: $CDC_TEST_STATE/terraform-schema)")
    args = parser.parse_args(argv)
    if hcl2 is None:
        print("error: python-hcl2 is not installed in %s; run scripts/terraform-schema/run.sh, which sets "
              "up its venv" % sys.executable, file=sys.stderr)
        return 2
    missing = [d for d in args.dirs if not os.path.isdir(d)]
    if missing:
        print("error: not a directory: %s" % ", ".join(missing), file=sys.stderr)
        return 2
    try:
        schema = schema_build.load(args.schema_cache)
    except schema_build.SchemaBuildError as e:
        print("error: cannot get the hashicorp/aws schema: %s" % e, file=sys.stderr)
        return 2
    failed = False
    for d in args.dirs:
        checker = check_dir(schema, d)
        for p in checker.problems:
            print(p)
        for n in checker.notes:
            print("%s: note: %s" % (checker.display_dir, n))
        print(checker.summary())
        failed |= bool(checker.problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
