"""ament_python package definition for maml_ros (also pip-installable)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'maml_ros'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*', 'bench', 'bench.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE}']),
        (f'share/{PACKAGE}', ['package.xml']),
        (f'share/{PACKAGE}/launch', glob('launch/*.launch.py')),
        (f'share/{PACKAGE}/config', glob('config/*.yaml')),
        (f'share/{PACKAGE}/checkpoints', glob('checkpoints/*.safetensors')),
    ],
    install_requires=['setuptools'],
    # Rollout collection on a Ray cluster (maml-ros-train --ray): pip install .[ray]
    extras_require={'ray': ['ray==2.58.0']},
    zip_safe=True,
    maintainer='maml_ros maintainers',
    maintainer_email='maintainers@maml-ros.invalid',
    description='Rapid sim-to-real adaptation for ROS 2 robots with MAML.',
    license='Apache-2.0',
    python_requires='>=3.10',
    entry_points={
        'console_scripts': [
            'pybullet_sim = maml_ros.nodes.pybullet_sim:main',
            'mujoco_sim = maml_ros.nodes.mujoco_sim:main',
            'adapter = maml_ros.nodes.adapter:main',
            'meta_trainer = maml_ros.nodes.meta_trainer:main',
            'maml-ros-bringup = maml_ros.cli.bringup:main',
            'maml-ros-demo = maml_ros.cli.demo:main',
            'maml-ros-train = maml_ros.cli.train:main',
            'maml-ros-check-robot = maml_ros.cli.check_robot:main',
            'maml-ros-evaluate = maml_ros.cli.evaluate:main',
            'maml-ros-sinusoid = maml_ros.cli.sinusoid:main',
            'maml-ros-replay = maml_ros.cli.replay:main',
            'maml-ros-log-to-bag = maml_ros.cli.log_to_bag:main',
        ],
    },
)
