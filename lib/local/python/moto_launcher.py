"""Runs moto_server with an ELBv2 target model that keeps ELB's own identity, timing and states.

moto stores ELBv2 state but none of ELB's timing: its DeregisterTargets removes a target at once,
every registered target reads ``healthy``, and targets are keyed by id only. agent-lb's
convergence depends on exactly those behaviours, so this launcher patches moto's target group
and hands over to moto's own server entry point with the same arguments.

What it models (from the Elastic Load Balancing user guide and API reference):

* **Identity.** A target is keyed by its id *and* port, so one address can be registered on several
  ports (several agents on one host). moto keys by id only: registering 127.0.0.1:8002 silently
  replaced 127.0.0.1:8001.
* **Deregistration delay.** DeregisterTargets puts a registered target in ``draining`` (reason
  ``Target.DeregistrationInProgress``) for the group's ``deregistration_delay.timeout_seconds``
  attribute (as set at that moment; moto's default is AWS's 300 s, CloudFormation's
  ``TargetGroupAttributes`` and ModifyTargetGroupAttributes change it), multiplied by the
  environment's ``AGENT_LB_TIME_SCALE`` (default 1: a local data plane that runs ALB's timing
  faster drains as long as this model does); after the delay the target is gone. A delay of 0
  removes it at once. DeregisterTargets of a target that is not registered (or
  already draining) answers 200 and changes nothing, as AWS does.
* **Re-registration.** RegisterTargets on a ``draining`` target registers it again at once.
* **States.** DescribeTargetHealth without ``Targets`` lists registered and draining targets;
  with ``Targets``, one that is neither reads ``unused`` / ``Target.NotRegistered``. A registered
  target reads ``healthy`` until a health reporter says otherwise (see below); in a group a reporter
  has reported for, a newly registered (or re-registered) target reads ``initial`` /
  ``Elb.RegistrationInProgress`` until its first report. With ``AGENT_LB_HEALTH_REPORTER=1`` in
  the environment (a data plane that checks every target is attached), every group is such a
  group from the start: no target reads ``healthy`` before a check passed.
* **Refusal.** An IP target with a public address (outside 10/8, 172.16/12, 192.168/16 and
  100.64/10) fails the whole RegisterTargets call with ``ValidationError`` and registers nothing,
  as ELB refuses it. Loopback is allowed: local mode runs its agents on 127.0.0.1 (ELB would
  refuse it; this is the model's one deliberate deviation).
* **Cost.** DescribeTargetHealth is answered with the XML moto's own serializer writes, written
  directly: moto's generic serializer spent about 0.3 ms per listed target (115 ms for a group of
  330, 12 ms for an empty one) under the interpreter lock every request needs, so each group read
  held up RegisterTargets calls; ELB's reads do not.
* **CloudFormation.** A target group's ``Tags``, ``TargetGroupAttributes`` and ``Targets`` are
  applied (moto drops them; agent-lb finds each capability's group by its tag, and local mode's
  Lambda target group names its function in ``Targets``).
* **Health checks off.** A target registered in a group whose health checks are disabled (a Lambda
  target group's default) reads ``unavailable`` / ``Target.HealthCheckDisabled``, as on ELB.

* **Load balancer attributes.** A load balancer's ``LoadBalancerAttributes`` in CloudFormation
  are applied (moto drops them; the data plane reads ``idle_timeout.timeout_seconds``).

The health reporter seam, for a local data plane that runs real health checks: ``POST
/_agent_lb/target-health`` with JSON ``{"targetGroupArn": ARN, "targets": [{"id": ID, "port": N,
"state": "initial"|"healthy"|"unhealthy"|"unavailable", "reason": CODE?, "description": TEXT?}]}``
sets the state DescribeTargetHealth reports for registered targets (draining or unregistered
targets are listed back as ``ignored``); the same is available in-process as
``report_target_health``. A report lasts until the target is deregistered. A report of
``"state": "unused"`` for a *draining* target ends its draining at once: the data plane found
nothing in flight on it and completed the deregistration early, as ALB does ("If a deregistering
target has no in-flight requests and no active connections, Elastic Load Balancing immediately
completes the deregistration process"); for any other target it is ignored.

What it does not model: health checks themselves (a reporter runs them), ``unused`` for groups no
listener rule uses (``Target.NotInUse``), slow start, in-flight requests (without a reporter a
target reads ``draining`` until the delay ends), the VPC rule for private addresses outside the
VPC (``AvailabilityZone: all``), quotas and API throttling (the chaos run's fault proxy adds AWS's
Register/Deregister bucket).
"""
import ipaddress
import json
import os
import re
import sys
import threading
import time
from xml.sax.saxutils import escape

from moto.elbv2 import models
from moto.elbv2.exceptions import TargetGroupNotFoundError, ValidationError
from moto.elbv2.responses import ELBV2Response
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.server import main

TargetGroup = models.FakeTargetGroup
CONTROL_PREFIX = "/_agent_lb/"
HEALTH_STATES = {"initial", "healthy", "unhealthy", "unavailable"}
DEFAULT_REASONS = {
    "initial": ("Elb.InitialHealthChecking", "Initial health checks in progress"),
    "unhealthy": ("Target.FailedHealthChecks", "Health checks failed"),
    "unavailable": ("Target.HealthCheckDisabled", "Health checks disabled"),
}
# A health reporter runs ALB's checks: targets start ``initial`` in every group, not ``healthy``.
REPORTER_ATTACHED = os.environ.get("AGENT_LB_HEALTH_REPORTER", "") not in ("", "0", "false")


def _time_scale():
    try:
        scale = float(os.environ.get("AGENT_LB_TIME_SCALE", "1"))
    except ValueError:
        raise SystemExit(f"AGENT_LB_TIME_SCALE must be a positive number, got {os.environ['AGENT_LB_TIME_SCALE']!r}")
    if not scale > 0:
        raise SystemExit(f"AGENT_LB_TIME_SCALE must be a positive number, got {scale}")
    return scale


TIME_SCALE = _time_scale()
PRIVATE_V4 = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")]
_lock = threading.RLock()


def _key(group, target):
    return f'{target["Id"]}:{target.get("Port", group.port)}'


def _state(group):
    """The model's own per-group state, next to moto's ``targets`` (registered, not draining)."""
    state = group.__dict__.get("_agent_lb")
    if state is None:
        # draining: key -> (target, epoch seconds it is gone); health: key -> (state, reason, description)
        state = {"draining": {}, "health": {}, "reported": REPORTER_ATTACHED}
        group.__dict__["_agent_lb"] = state
    return state


def _expire(group, now=None):
    now = time.time() if now is None else now
    draining = _state(group)["draining"]
    for key in [k for k, (_, until) in draining.items() if until <= now]:
        target = draining.pop(key)[0]
        group.deregistered_targets[key] = target


def _delay_seconds(group):
    try:
        seconds = max(0, int(group.attributes.get("deregistration_delay.timeout_seconds", 300)))
    except (TypeError, ValueError):
        seconds = 300
    return seconds * TIME_SCALE


def _refusal(group, target):
    if group.target_type != "ip":
        return None
    try:
        address = ipaddress.ip_address(target["Id"])
    except ValueError:
        return f"The IP address '{target['Id']}' is not a valid IP address"
    if address.version == 4 and not address.is_loopback and not any(address in n for n in PRIVATE_V4):
        return f"The IP address '{target['Id']}' is not a valid private IP address for the target group"
    return None


def register(self, targets):
    # ELB validates the whole call first: one refused target fails it and registers nothing.
    for target in targets:
        why = _refusal(self, target)
        if why:
            raise ValidationError(why)
        instance = self.ec2_backend.get_instance_by_id(target["Id"])
        if instance and instance.state != "running":
            raise models.TargetNotRunning(instance_id=target["Id"])
    with _lock:
        _expire(self)
        state = _state(self)
        for target in targets:
            key = _key(self, target)
            if key in self.targets:
                continue
            state["draining"].pop(key, None)
            self.targets[key] = {"Id": target["Id"], "Port": target.get("Port", self.port)}
            self.deregistered_targets.pop(key, None)
            if not self.health_check_enabled:
                # ELB does not check it (a Lambda target group's default): it reads ``unavailable``.
                state["health"][key] = ("unavailable",) + DEFAULT_REASONS["unavailable"]
            elif state["reported"]:
                state["health"][key] = ("initial", "Elb.RegistrationInProgress", "Target registration is in progress")
            else:
                state["health"].pop(key, None)


def deregister(self, targets):
    # AWS answers 200 for a target that is not registered (nothing to do); moto raised
    # InvalidTarget at the first such target, after removing the ones before it.
    with _lock:
        _expire(self)
        state = _state(self)
        now = time.time()
        delay = _delay_seconds(self)
        for target in targets:
            key = _key(self, target)
            found = self.targets.pop(key, None)
            if not found:
                continue
            state["health"].pop(key, None)
            if delay == 0:
                self.deregistered_targets[key] = found
            else:
                state["draining"][key] = (found, now + delay)


def deregister_terminated_instances(self, instance_ids):
    with _lock:
        for key, target in list(self.targets.items()):
            if target["Id"] in instance_ids:
                self.terminated_targets[key] = self.targets.pop(key)


def _health(group, target, ec2_backend):
    """The state of one target; the caller holds _lock and has expired finished drains."""
    port = target.get("Port", group.port)
    key = _key(group, target)
    state = _state(group)
    registered = group.targets.get(key)
    reported = state["health"].get(key)
    status = lambda s, reason=None, description=None: models.FakeHealthStatus(target["Id"], port, group.health_check_port, s, reason, description)
    if registered is not None:
        if target["Id"].startswith("i-"):
            instance = ec2_backend.get_instance_by_id(target["Id"])
            if instance and instance.state == "stopped":
                return status("unused", "Target.InvalidState", "Target is in the stopped state")
        if reported is not None:
            return status(*reported)
        return status("healthy")
    if key in state["draining"] or key in group.terminated_targets:
        return status("draining", "Target.DeregistrationInProgress", "Target deregistration is in progress")
    return status("unused", "Target.NotRegistered", "Target is not registered to the target group")


def health_for(self, target, ec2_backend):
    with _lock:
        _expire(self)
        return _health(self, target, ec2_backend)


def describe_target_health(self, target_group_arn, targets):
    group = self.target_groups.get(target_group_arn)
    if group is None:
        raise TargetGroupNotFoundError()
    # One instant for the listing and every state in it: a target whose delay ends while the
    # answer is built must not be listed and then read as not registered.
    with _lock:
        _expire(group)
        listed = targets or list(group.targets.values()) + [t for t, _ in _state(group)["draining"].values()]
        return [_health(group, t, self.ec2_backend) for t in listed]


_create_from_cloudformation_json = TargetGroup.create_from_cloudformation_json.__func__


def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    group = _create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
    properties = cloudformation_json.get("Properties", {})
    backend = models.elbv2_backends[account_id][region_name]
    tags = properties.get("Tags")
    if tags:
        backend.tagging_service.tag_resource(group.arn, tags)
    attributes = {a["Key"]: a["Value"] for a in properties.get("TargetGroupAttributes") or [] if "Key" in a and "Value" in a}
    if attributes:
        backend.modify_target_group_attributes(group.arn, attributes)
    # A Lambda target group's function (local mode names it by a local ARN): registered as
    # CloudFormation registers ``Targets``. moto ignores the property.
    targets = [{"Id": t["Id"], **({"Port": int(t["Port"])} if "Port" in t else {})} for t in properties.get("Targets") or [] if isinstance(t.get("Id"), str)]
    if targets:
        group.register(targets)
    return group


_create_load_balancer_from_cloudformation_json = models.FakeLoadBalancer.create_from_cloudformation_json.__func__


def create_load_balancer_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    balancer = _create_load_balancer_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
    properties = cloudformation_json.get("Properties", {})
    attributes = {a["Key"]: a["Value"] for a in properties.get("LoadBalancerAttributes") or [] if "Key" in a and "Value" in a}
    known = {k: v for k, v in attributes.items() if k in models.FakeLoadBalancer.VALID_ATTRS}
    if known:
        models.elbv2_backends[account_id][region_name].modify_load_balancer_attributes(balancer.arn, known)
    return balancer


def _group_by_arn(arn):
    match = re.match(r"^arn:[^:]+:elasticloadbalancing:([^:]+):(\d+):targetgroup/", arn or "")
    if not match:
        return None
    region, account = match.group(1), match.group(2)
    return models.elbv2_backends[account][region].target_groups.get(arn)


def report_target_health(target_group_arn, reports):
    """Sets the health state of registered targets; returns (applied keys, ignored keys)."""
    group = _group_by_arn(target_group_arn)
    if group is None:
        raise KeyError(f"no target group {target_group_arn}")
    applied, ignored = [], []
    with _lock:
        _expire(group)
        state = _state(group)
        state["reported"] = True
        for report in reports:
            target = {"Id": str(report["id"]), "Port": int(report["port"])}
            key = _key(group, target)
            health = report["state"]
            if health not in HEALTH_STATES and health != "unused":
                raise ValueError(f"state {health!r} must be one of {sorted(HEALTH_STATES | {'unused'})}")
            if health == "unused":
                # The deregistration completed early (nothing in flight): the draining ends now.
                drained = state["draining"].pop(key, None)
                if drained is None:
                    ignored.append(key)
                    continue
                group.deregistered_targets[key] = drained[0]
                applied.append(key)
                continue
            if key not in group.targets:
                ignored.append(key)
                continue
            reason, description = DEFAULT_REASONS.get(health, (None, None))
            state["health"][key] = (health, report.get("reason", reason), report.get("description", description))
            applied.append(key)
    return applied, ignored


def _control(environ, start_response):
    def answer(status, body):
        data = json.dumps(body).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    path = environ.get("PATH_INFO", "")
    if path != CONTROL_PREFIX + "target-health" or environ.get("REQUEST_METHOD") != "POST":
        return answer("404 Not Found", {"error": f"unknown control path {path}"})
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.loads(environ["wsgi.input"].read(length) or b"{}")
        applied, ignored = report_target_health(body["targetGroupArn"], body.get("targets", []))
    except KeyError as error:
        return answer("404 Not Found", {"error": str(error)})
    except (ValueError, TypeError) as error:
        return answer("400 Bad Request", {"error": str(error)})
    return answer("200 OK", {"applied": applied, "ignored": ignored})


def _xml(value):
    return escape(str(value))


def _health_member(status):
    health = f"<State>{_xml(status.status)}</State>"
    if status.reason:
        health += f"<Reason>{_xml(status.reason)}</Reason>"
    if status.description:
        health += f"<Description>{_xml(status.description)}</Description>"
    port = "" if status.port is None else f"<Port>{_xml(status.port)}</Port>"
    check_port = "" if status.health_check_port is None else f"<HealthCheckPort>{_xml(status.health_check_port)}</HealthCheckPort>"
    return f"<member><Target><Id>{_xml(status.instance_id)}</Id>{port}</Target>{check_port}<TargetHealth>{health}</TargetHealth></member>"


def describe_target_health_response(self):
    """The DescribeTargetHealth answer, written directly: the same XML moto's generic serializer
    writes, at a tenth of its cost. That serializer spent about 0.3 ms per listed target (115 ms for
    a group of 330), holding the one interpreter lock every other request waits for, so a group read
    (the rotation poll, reconcile, a benchmark's observer) held up RegisterTargets calls in a way
    ELB's does not."""
    descriptions = self.elbv2_backend.describe_target_health(self._get_param("TargetGroupArn"), self._get_param("Targets", []))
    members = "".join(_health_member(d) for d in descriptions)
    body = (
        '<DescribeTargetHealthResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/">'
        f"<DescribeTargetHealthResult><TargetHealthDescriptions>{members}</TargetHealthDescriptions></DescribeTargetHealthResult>"
        # moto puts the request id in (BaseResponse._enrich_response).
        "<ResponseMetadata><RequestId>-</RequestId></ResponseMetadata></DescribeTargetHealthResponse>"
    )
    return body, {"Content-Type": "text/xml"}


_dispatch = DomainDispatcherApplication.__call__


def dispatch(self, environ, start_response):
    if environ.get("PATH_INFO", "").startswith(CONTROL_PREFIX):
        return _control(environ, start_response)
    return _dispatch(self, environ, start_response)


TargetGroup.create_from_cloudformation_json = classmethod(create_from_cloudformation_json)
models.FakeLoadBalancer.create_from_cloudformation_json = classmethod(create_load_balancer_from_cloudformation_json)
TargetGroup.register = register
TargetGroup.deregister = deregister
TargetGroup.deregister_terminated_instances = deregister_terminated_instances
TargetGroup.health_for = health_for
models.ELBv2Backend.describe_target_health = describe_target_health
ELBV2Response.describe_target_health = describe_target_health_response
DomainDispatcherApplication.__call__ = dispatch

if __name__ == "__main__":
    main(sys.argv[1:])
