"""Runs moto_server with ELBv2 target identity fixed to (Id, Port), and target group tags applied from CloudFormation.

Real ELBv2 keys a registered target by its id *and* port, so one address can be registered
several times on different ports (several agents on one host). moto 5.x keys targets by id
only: registering 127.0.0.1:8002 silently replaces 127.0.0.1:8001. Local mode runs many demo
agents on 127.0.0.1, so it patches the three FakeTargetGroup methods that use the key, then
hands over to moto's own server entry point with the same arguments.
"""
import sys

from moto.elbv2 import models
from moto.server import main

TargetGroup = models.FakeTargetGroup


def _key(group, target):
    return f'{target["Id"]}:{target.get("Port", group.port)}'


def register(self, targets):
    for target in targets:
        instance = self.ec2_backend.get_instance_by_id(target["Id"])
        if instance and instance.state != "running":
            raise models.TargetNotRunning(instance_id=target["Id"])
        key = _key(self, target)
        self.targets[key] = {"Id": target["Id"], "Port": target.get("Port", self.port)}
        self.deregistered_targets.pop(key, None)


def deregister(self, targets):
    # AWS answers 200 for a target that is not registered (nothing to do). moto raised
    # InvalidTarget at the first such target, after removing the ones before it: a retried
    # DeregisterTargets whose first attempt had landed then half-applied and failed.
    for target in targets:
        key = _key(self, target)
        found = self.targets.pop(key, None)
        if found:
            self.deregistered_targets[key] = found


def deregister_terminated_instances(self, instance_ids):
    for key, target in list(self.targets.items()):
        if target["Id"] in instance_ids:
            self.terminated_targets[key] = self.targets.pop(key)


_health_for = TargetGroup.health_for


def health_for(self, target, ec2_backend):
    # moto's health_for looks targets up by id: show it only the entry for this port.
    key = _key(self, target)
    by_id = lambda d: {target["Id"]: d[key]} if key in d else {}
    view = TargetGroup.__new__(TargetGroup)
    view.__dict__.update(self.__dict__)
    view.targets = by_id(self.targets)
    view.deregistered_targets = by_id(self.deregistered_targets)
    view.terminated_targets = by_id(self.terminated_targets)
    return _health_for(view, target, ec2_backend)


_create_from_cloudformation_json = TargetGroup.create_from_cloudformation_json.__func__


def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    # CloudFormation applies a target group's Tags; moto drops them, and agent-lb finds each
    # capability's group by its tag.
    group = _create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
    tags = cloudformation_json.get("Properties", {}).get("Tags")
    if tags:
        models.elbv2_backends[account_id][region_name].tagging_service.tag_resource(group.arn, tags)
    return group


TargetGroup.create_from_cloudformation_json = classmethod(create_from_cloudformation_json)
TargetGroup.register = register
TargetGroup.deregister = deregister
TargetGroup.deregister_terminated_instances = deregister_terminated_instances
TargetGroup.health_for = health_for

if __name__ == "__main__":
    main(sys.argv[1:])
