"""A vendor's URDF as it comes: a KUKA LBR iiwa with its inertias and no meshes, and frames
declared without ``<inertial>`` (``base``, ``iiwa_link_ee``), as dynamics projects publish
it. Massless frames stay massless in both engines and the model; the check judges what it
can without collision geometry; meta-training runs without ``--force``."""

import xml.etree.ElementTree as ElementTree

import numpy as np
import pybullet_data
import pytest
import yaml

from maml_ros.cli import check_robot, train
from maml_ros.model.inertial_identification import InertialIdentification
from maml_ros.resources import share_file
from maml_ros.sim import RobotConfig, make_robot
from maml_ros.sim.quiet_pybullet import pybullet
from maml_ros.sim.robot_check import check_robot as run_check

JOINTS = [f'lbr_iiwa_joint_{i}' for i in range(1, 8)]
HOME = [0.0, 0.5, 0.0, -1.2, 0.0, 0.8, 0.0]
MASSLESS = ['iiwa_link_ee', 'base']
SHORT = ['tasks=32', 'steps_per_task=300', 'support_size=100', 'query_size=100',
         'meta_iterations=10', 'meta_batch=8', 'pretrain_iterations=50', 'refresh_tasks=0',
         'validation_tasks=4', 'closed_loop_tasks=1', 'validation_every=10',
         'hidden=[32, 32]', 'physics_iterations=10', 'physics_features=4',
         'physics_hidden=[16]']


@pytest.fixture(scope='module')
def urdf(tmp_path_factory):
    """pybullet_data's iiwa (BSD, from lbr_iiwa) without visual and collision geometry, with
    two fixed frames that declare no ``<inertial>``; and the mass its links declare."""
    tree = ElementTree.parse(f'{pybullet_data.getDataPath()}/kuka_iiwa/model.urdf')
    root = tree.getroot()
    for link in root.iter('link'):
        for geometry in link.findall('visual') + link.findall('collision'):
            link.remove(geometry)
    for parent, frame in (('lbr_iiwa_link_7', 'iiwa_link_ee'), ('lbr_iiwa_link_0', 'base')):
        ElementTree.SubElement(root, 'link', name=frame)
        joint = ElementTree.SubElement(root, 'joint', name=f'{frame}_joint', type='fixed')
        ElementTree.SubElement(joint, 'parent', link=parent)
        ElementTree.SubElement(joint, 'child', link=frame)
        ElementTree.SubElement(joint, 'origin', xyz='0 0 0.045', rpy='0 0 0')
    path = tmp_path_factory.mktemp('iiwa') / 'iiwa14_dynamics.urdf'
    tree.write(path)
    declared = sum(float(mass.get('value')) for mass in root.iter('mass'))
    return path, declared


def config(path, *, inertia_from_urdf=True):
    return RobotConfig(urdf_path=str(path), joints=tuple(JOINTS), payload_link='lbr_iiwa_link_7',
                       home=tuple(HOME), use_urdf_inertia=inertia_from_urdf)


def test_frames_without_inertial_are_massless_in_both_engines_and_the_model(urdf):
    path, declared = urdf
    assert declared == pytest.approx(17.5)
    with make_robot('pybullet', config=config(path)) as robot:
        client, body = robot._client, robot._body
        masses = [pybullet.getDynamicsInfo(body, link, physicsClientId=client)[0]
                  for link in range(-1, pybullet.getNumJoints(body, physicsClientId=client))]
    assert sum(masses) == pytest.approx(declared)  # PyBullet alone: 2 kg more
    with make_robot('mujoco', config=config(path)) as robot:
        assert float(np.sum(robot._model.body_mass)) == pytest.approx(declared)
    identification = InertialIdentification(config(path))
    assert sum(identification.model.inertias[j].mass
               for j in range(1, identification.model.njoints)) == pytest.approx(declared)


def test_the_check_passes_physical_inertias_without_collision_geometry_and_says_why(urdf):
    path, _ = urdf
    report = run_check(config(path), closed_loop=False)
    assert not [f.message for f in report.findings if f.status == 'FAIL']
    messages = [f.message for f in report.findings]
    assert f'links without <inertial> are massless (the URDF convention): {", ".join(MASSLESS)}' \
        in messages
    (shapeless,) = [f for f in report.findings if 'no collision geometry' in f.message]
    assert shapeless.status == 'WARN' and 'lbr_iiwa_link_7' in shapeless.message


def test_inertias_from_collision_meshes_that_are_not_there_are_refused_with_what_works(urdf):
    path, _ = urdf
    report = run_check(config(path, inertia_from_urdf=False), closed_loop=False)
    failures = [f.message for f in report.findings if f.status == 'FAIL']
    assert len(failures) == 7
    assert all(message.endswith('set inertia: urdf') and 'no collision geometry' in message
               for message in failures)


def test_a_bad_inertia_on_a_link_without_geometry_is_refused_naming_only_the_urdf(urdf,
                                                                                 tmp_path):
    path, _ = urdf
    tree = ElementTree.parse(path)
    inertia = next(link for link in tree.getroot().iter('link')
                   if link.get('name') == 'lbr_iiwa_link_4').find('inertial/inertia')
    inertia.set('ixx', '0.3')  # 0.3 > 0.01 + 0.029: not a rigid body's
    tree.write(tmp_path / 'broken.urdf')
    failures = [f.message for f in run_check(config(tmp_path / 'broken.urdf'),
                                             closed_loop=False).findings
                if f.status == 'FAIL']
    assert len(failures) == 1 and 'lbr_iiwa_link_4' in failures[0]
    assert failures[0].endswith('; fix the URDF')  # no collision geometry to take one from


def test_meta_training_runs_on_it_without_force(urdf, tmp_path, capsys, restore_handlers):
    path, _ = urdf
    sections = yaml.safe_load(share_file('config', 'adapt.yaml').read_text())
    sections['/**']['ros__parameters'].update(
        urdf=str(path), joints=JOINTS, payload_link='lbr_iiwa_link_7', home=HOME,
        inertia='urdf')
    settings = tmp_path / 'iiwa.yaml'
    settings.write_text(yaml.safe_dump(sections))
    assert check_robot.main(['--config', str(settings)]) == 0
    checkpoint = tmp_path / 'iiwa.safetensors'
    assert train.main(['--config', str(settings), '--out', str(checkpoint), '--workers', '2',
                       *(f'--set={item}' for item in SHORT)]) == 0
    assert checkpoint.stat().st_size > 0
    assert 'refused' not in capsys.readouterr().err
