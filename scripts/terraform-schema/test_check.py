"""Tests of the offline Terraform schema checker (run with the venv's python, see run.sh):

    scripts/terraform-schema/run.sh --self-test
    cd scripts/terraform-schema && $VENV/bin/python -m unittest -v test_check

The first run builds the cached schema from the pinned wheel (downloaded with pip).
"""

import io
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import unittest
from contextlib import redirect_stdout

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import check  # noqa: E402
import schema_build  # noqa: E402

FIXTURES = os.path.join(HERE, "fixtures")
VERSIONS_TF = textwrap.dedent("""\
    terraform {
      required_providers {
        aws = {
          source  = "hashicorp/aws"
          version = "~> 6.25"
        }
      }
    }
    """)

_SCHEMA = None


def schema():
    global _SCHEMA
    if _SCHEMA is None:
        _SCHEMA = schema_build.load()
    return _SCHEMA


def run_cli(*dirs):
    out = io.StringIO()
    with redirect_stdout(out):
        code = check.main(list(dirs))
    return code, out.getvalue()


class SchemaTest(unittest.TestCase):
    """What the compact schema says about a few well-known types."""

    def test_pinned_version(self):
        s = schema()
        self.assertEqual(s["provider"], "hashicorp/aws")
        self.assertEqual(s["provider_version"], "6.25.0")
        self.assertGreater(len(s["resources"]), 1500)
        self.assertGreater(len(s["data_sources"]), 600)

    def test_blocks_and_attributes(self):
        svc = schema()["resources"]["aws_ecs_service"]
        cb = svc["blocks"]["deployment_circuit_breaker"]
        self.assertEqual((cb["min_items"], cb["max_items"]), (0, 1))
        self.assertEqual(set(cb["block"]["attributes"]), {"enable", "rollback"})
        self.assertTrue(cb["block"]["attributes"]["enable"]["required"])
        self.assertIsNone(svc["blocks"]["load_balancer"]["max_items"])
        self.assertTrue(svc["attributes"]["name"]["required"])
        self.assertEqual(svc["attributes"]["tags"]["kind"], "value")
        self.assertIn("region", svc["attributes"])  # per-resource region, new in 6.0
        td = schema()["resources"]["aws_ecs_task_definition"]
        self.assertEqual(td["attributes"]["container_definitions"], {"kind": "value", "required": True})
        self.assertTrue(td["attributes"]["family"]["required"])

    def test_required_block(self):
        lst = schema()["resources"]["aws_lb_listener"]
        self.assertEqual(lst["blocks"]["default_action"]["min_items"], 1)

    def test_object_attributes(self):
        res = schema()["resources"]
        self.assertEqual(res["aws_security_group"]["attributes"]["ingress"]["kind"], "object_list")
        self.assertIn("self", res["aws_security_group"]["attributes"]["ingress"]["block"]["attributes"])
        self.assertEqual(res["aws_s3tables_table_bucket"]["attributes"]["encryption_configuration"]["kind"],
                         "object")

    def test_opaque_block(self):
        rule = schema()["resources"]["aws_wafv2_web_acl"]["blocks"]["rule"]["block"]
        self.assertIsNone(rule["blocks"]["statement"]["block"])

    def test_data_source(self):
        doc = schema()["data_sources"]["aws_iam_policy_document"]
        principals = doc["blocks"]["statement"]["block"]["blocks"]["principals"]
        self.assertEqual(set(principals["block"]["attributes"]), {"type", "identifiers"})

    def test_renamed_properties_keep_terraform_names(self):
        ingress = schema()["resources"]["aws_security_group"]["attributes"]["ingress"]["block"]
        self.assertNotIn("self_attribute", ingress["attributes"])
        self.assertIn("s3api", schema()["provider_config"]["blocks"]["endpoints"]["block"]["attributes"])


class VersionConstraintTest(unittest.TestCase):
    def test_accepted(self):
        for c in ["~> 6.25", "~> 6.25.0", ">= 6.25.0, < 7.0.0", ">= 6.25, < 6.26", "6.25.0", "= 6.25.0"]:
            self.assertIsNone(check.check_version_constraint(c), c)

    def test_rejected(self):
        for c, why in [
            (">= 5.0", "below"),
            ("~> 6.0", "below"),
            ("~> 6.24", "below"),
            (">= 6.25.0", "7.0.0"),
            ("~> 6.26", "does not admit"),
            ("~> 6.25.1", "does not admit"),
            ("< 7.0.0", "below"),
            ("~> 6.x", "cannot parse"),
        ]:
            reason = check.check_version_constraint(c)
            self.assertIsNotNone(reason, c)
            self.assertIn(why, reason, c)


class FixtureTest(unittest.TestCase):
    def assertFails(self, fixture, *expected_lines):
        """Each expected line is a list of substrings that one output line must contain."""
        path = os.path.join(FIXTURES, fixture)
        code, out = run_cli(path)
        self.assertEqual(code, 1, out)
        lines = out.splitlines()
        for needles in expected_lines:
            self.assertTrue(any(all(n in line for n in needles) for line in lines),
                            "no line with %r in:\n%s" % (needles, out))
        return out

    def test_clean_module(self):
        code, out = run_cli(os.path.join(FIXTURES, "clean"))
        self.assertEqual(code, 0, out)
        self.assertRegex(out.strip().splitlines()[-1],
                         r"clean: checked 6 resources, 2 data sources against hashicorp/aws 6\.25\.0 .*: ok$")

    def test_clean_example_calling_the_module(self):
        code, out = run_cli(os.path.join(FIXTURES, "example_clean"))
        self.assertEqual(code, 0, out)

    def test_clean_through_the_command_line(self):
        proc = subprocess.run([sys.executable, os.path.join(HERE, "check.py"), os.path.join(FIXTURES, "clean")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertIn("against hashicorp/aws 6.25.0", proc.stdout)

    def test_misspelt_argument(self):
        self.assertFails("misspelt_argument",
                         ["misspelt_argument/main.tf:4:", "aws_ecs_service.app",
                          '"deployment_minimum_healthy_percnt"',
                          'did you mean "deployment_minimum_healthy_percent"'])

    def test_misspelt_block(self):
        self.assertFails("misspelt_block",
                         ["main.tf:5:", "aws_ecs_service.app", 'unknown block "deployment_circut_breaker"',
                          'did you mean "deployment_circuit_breaker"'])

    def test_unknown_resource_type(self):
        self.assertFails("unknown_resource_type",
                         ["main.tf:1:", "aws_ecs_servise.app", 'unknown resource type "aws_ecs_servise"',
                          'did you mean "aws_ecs_service"'])

    def test_missing_required_argument(self):
        self.assertFails("missing_required_argument",
                         ["main.tf:1:", "aws_ecs_task_definition.no_family", 'missing required argument "family"'],
                         ["main.tf:5:", "aws_ecs_task_definition.no_containers",
                          'missing required argument "container_definitions"'])

    def test_wrong_nesting(self):
        self.assertFails("wrong_nesting",
                         ["main.tf:4:", "aws_ecs_service.app", 'unknown argument "assign_public_ip"',
                          "did you mean to write it inside `network_configuration { }`"])

    def test_block_written_as_argument(self):
        self.assertFails("block_as_argument",
                         ["main.tf:5:", "aws_ecs_service.app", '"deployment_circuit_breaker"',
                          "is a block, not an argument"])

    def test_argument_written_as_block(self):
        self.assertFails("argument_as_block",
                         ["main.tf:5:", "aws_ecs_service.app", '"tags"', "is an argument, not a block"])

    def test_dynamic_block_content_and_type(self):
        self.assertFails("dynamic_bad_content",
                         ["main.tf:13:", "aws_ecs_service.app", 'unknown argument "target_group" in load_balancer',
                          'did you mean "target_group_arn"'],
                         ["main.tf:19:", 'unknown block "load_balancers"', "dynamic",
                          'did you mean "load_balancer"'])

    def test_deep_nesting(self):
        self.assertFails("deep_nesting_errors",
                         ["main.tf:21:", "aws_appautoscaling_policy.requests", 'unknown block "dimension"',
                          "customized_metric_specification.metrics.metric_stat.metric",
                          'did you mean "dimensions"'],
                         ["main.tf:32:", 'missing required block "metric"'])

    def test_too_many_blocks(self):
        self.assertFails("too_many_blocks",
                         ["main.tf:10:", "aws_ecs_service.app", 'too many "deployment_circuit_breaker" blocks'])

    def test_missing_required_block(self):
        self.assertFails("missing_required_block",
                         ["main.tf:1:", "aws_lb_listener.http", 'missing required block "default_action"'])

    def test_unknown_data_source_and_data_source_as_resource(self):
        self.assertFails("unknown_data_source",
                         ["main.tf:1:", "data.aws_iam_policy_documents.assume",
                          'unknown data source type "aws_iam_policy_documents"',
                          'did you mean "aws_iam_policy_document"'],
                         ["main.tf:12:", "aws_iam_policy_document.assume", "is a data source",
                          'did you mean `data "aws_iam_policy_document"`'])

    def test_data_source_nested_block(self):
        self.assertFails("data_source_errors",
                         ["main.tf:5:", "data.aws_iam_policy_document.assume", 'unknown block "principal"',
                          'did you mean "principals"'])

    def test_bad_version_constraint(self):
        self.assertFails("bad_version_constraint",
                         ["main.tf:3:", "terraform.required_providers.aws", '">= 5.0"', "minimum must be 6.25.0"])

    def test_missing_required_providers(self):
        self.assertFails("missing_required_providers",
                         ["terraform.required_providers", "aws is not declared"])

    def test_module_inputs_and_provider(self):
        self.assertFails("example_bad_inputs",
                         ["main.tf:2:", "provider.aws", 'unknown argument "regoin"', 'did you mean "region"'],
                         ["main.tf:10:", "module.app", 'unknown module input "subnet_id"',
                          'did you mean "subnet_ids"'],
                         ["main.tf:5:", "module.app", 'missing required module input "image"'])

    def test_several_directories_fail_together(self):
        code, out = run_cli(os.path.join(FIXTURES, "clean"), os.path.join(FIXTURES, "misspelt_block"))
        self.assertEqual(code, 1)
        self.assertIn("clean: checked", out)
        self.assertIn("misspelt_block: checked", out)


class InlineTest(unittest.TestCase):
    """Smaller cases, written to a temporary module."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="tfschema-test-")
        self.addCleanup(shutil.rmtree, self.dir)

    def check(self, main_tf, versions=True):
        if versions:
            with open(os.path.join(self.dir, "versions.tf"), "w") as f:
                f.write(VERSIONS_TF)
        with open(os.path.join(self.dir, "main.tf"), "w") as f:
            f.write(textwrap.dedent(main_tf))
        return check.check_dir(schema(), self.dir, "m")

    def messages(self, checker):
        return [str(p) for p in checker.problems]

    def test_object_attribute(self):
        ok = self.check("""\
            resource "aws_s3tables_table_bucket" "b" {
              name                     = "b"
              encryption_configuration = { sse_algorithm = "AES256", kms_key_arn = null }
            }
            """)
        self.assertEqual(self.messages(ok), [])
        bad = self.check("""\
            resource "aws_s3tables_table_bucket" "b" {
              name = "b"
              encryption_configuration {
                sse_algorithm = "AES256"
              }
            }
            """)
        self.assertIn("is an argument, not a block", "\n".join(self.messages(bad)))

    def test_attributes_as_blocks_checked_and_dynamic(self):
        c = self.check("""\
            resource "aws_security_group" "s" {
              name = "s"
              dynamic "ingress" {
                for_each = [1]
                content {
                  from_port = 1
                  to_port   = 1
                  protocol  = "tcp"
                }
              }
              egress {
                from_prt = 0
              }
            }
            """)
        msgs = self.messages(c)
        self.assertEqual(len(msgs), 1, msgs)
        self.assertIn('unknown argument "from_prt" in egress; did you mean "from_port"', msgs[0])

    def test_required_set_by_variable_or_dynamic(self):
        c = self.check("""\
            variable "actions" { type = list(any) }
            variable "arn" { type = string }
            resource "aws_lb_listener" "l" {
              load_balancer_arn = var.arn
              dynamic "default_action" {
                for_each = var.actions
                content {
                  type             = default_action.value.type
                  target_group_arn = default_action.value.arn
                }
              }
            }
            """)
        self.assertEqual(self.messages(c), [])

    def test_dynamic_structure(self):
        c = self.check("""\
            resource "aws_ecs_service" "s" {
              name = "s"
              dynamic "load_balancer" {
                container_name = "x"
                content {
                  container_name = "app"
                  container_port = 80
                }
              }
            }
            """)
        text = "\n".join(self.messages(c))
        self.assertIn('unknown argument "container_name" in dynamic "load_balancer"', text)
        self.assertIn('dynamic "load_balancer" in resource aws_ecs_service has no for_each', text)

    def test_top_level_argument_inside_a_block(self):
        c = self.check("""\
            resource "aws_ecs_service" "s" {
              name = "s"
              network_configuration {
                subnets       = ["a"]
                desired_count = 2
              }
            }
            """)
        text = "\n".join(self.messages(c))
        self.assertIn('unknown argument "desired_count" in network_configuration', text)
        self.assertIn("did you mean to write it at the top level", text)

    def test_meta_arguments_and_lifecycle(self):
        c = self.check("""\
            resource "aws_ecs_cluster" "c" {
              for_each   = toset(["a"])
              name       = each.key
              provider   = aws
              depends_on = []
              lifecycle {
                create_before_destroy = true
                ignore_changes        = [tags]
              }
              provisioner "local-exec" {
                command = "true"
              }
            }
            data "aws_region" "r" {
              count = 1
              lifecycle {
                postcondition {
                  condition     = true
                  error_message = "x"
                }
              }
            }
            """)
        self.assertEqual(self.messages(c), [])
        self.assertEqual((c.n_resources, c.n_data), (1, 1))

    def test_duplicate_and_null_arguments(self):
        c = self.check("""\
            resource "aws_ecs_cluster" "c" {
              name = "a"
              name = "b"
            }
            resource "aws_ecs_task_definition" "t" {
              family                = null
              container_definitions = "[]"
            }
            """)
        text = "\n".join(self.messages(c))
        self.assertIn('argument "name" is set twice', text)
        self.assertIn('required argument "family" in resource aws_ecs_task_definition is set to null', text)

    def test_other_providers_and_check_blocks(self):
        c = self.check("""\
            resource "random_id" "r" {
              byte_length = 4
            }
            check "health" {
              data "aws_region" "r" {
                regoin = "x"
              }
              assert {
                condition     = true
                error_message = "x"
              }
            }
            """)
        self.assertEqual(c.n_skipped, 1)
        text = "\n".join(self.messages(c))
        self.assertIn('data.aws_region.r: unknown argument "regoin"', text)

    def test_misspelt_provider_prefix(self):
        c = self.check("""\
            resource "awss_ecs_service" "s" {
              name = "s"
            }
            """)
        self.assertIn('did you mean "aws_ecs_service"', "\n".join(self.messages(c)))

    def test_opaque_block_is_not_checked(self):
        c = self.check("""\
            resource "aws_wafv2_web_acl" "w" {
              name  = "w"
              scope = "REGIONAL"
              default_action {
                allow {}
              }
              visibility_config {
                cloudwatch_metrics_enabled = false
                metric_name                = "w"
                sampled_requests_enabled   = false
              }
              rule {
                name     = "r"
                priority = 1
                action {
                  block {}
                }
                statement {
                  anything_here {
                    nested = true
                  }
                }
                visibility_config {
                  cloudwatch_metrics_enabled = false
                  metric_name                = "r"
                  sampled_requests_enabled   = false
                }
              }
            }
            """)
        self.assertEqual(self.messages(c), [])

    def test_parse_error_is_reported(self):
        c = self.check("""\
            resource "aws_ecs_cluster" "c" {
              name = "c"
            """)
        msgs = self.messages(c)
        self.assertEqual(len(msgs), 1, msgs)
        self.assertIn("m/main.tf", msgs[0])
        self.assertIn("cannot parse", msgs[0])

    def test_legacy_required_providers_string(self):
        c = self.check("""\
            terraform {
              required_providers {
                aws = "~> 6.0"
              }
            }
            resource "aws_ecs_cluster" "c" {
              name = "c"
            }
            """, versions=False)
        self.assertIn('version constraint "~> 6.0" admits versions below 6.25.0', "\n".join(self.messages(c)))




if __name__ == "__main__":
    # Like `python -m unittest`, plus a closing "N passed, N failed" line for CI logs.
    prog = unittest.main(exit=False, verbosity=2)
    r = prog.result
    bad = len(r.failures) + len(r.errors) + len(getattr(r, "unexpectedSuccesses", []))
    skipped = len(r.skipped)
    print("%d passed, %d failed%s" % (r.testsRun - bad - skipped, bad,
                                      ", %d skipped" % skipped if skipped else ""))
    sys.exit(0 if r.wasSuccessful() else 1)
