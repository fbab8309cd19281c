"""What the robot runs and adapts (no rclpy): the learning problem, the models and their
adaptation.

- :mod:`~maml_ros.model.formulation`: the learning problem (inputs, nominal torque, hindsight
  labels); :mod:`~maml_ros.model.transitions`: the transitions every model is fitted on;
- :mod:`~maml_ros.model.trained_models`: a checkpoint's models (:class:`TrainedModels`);
- :mod:`~maml_ros.model.physics_model` and :mod:`~maml_ros.model.physics_adaptation`: the
  physics-structured model and its one-step adaptation (``maml_physics``);
- :mod:`~maml_ros.model.adaptation`: gradient adaptation of the network (``maml`` and the
  network baselines); :mod:`~maml_ros.model.policy_controller`: a network as a controller;
- :mod:`~maml_ros.model.actuator`: command delay and torque lag, and their inversion;
- :mod:`~maml_ros.model.model_based`: the classical rivals (``sysid``, the true model);
- :mod:`~maml_ros.model.outcome`: what one adaptation did;
  :mod:`~maml_ros.model.data`: many tasks' transitions for meta-training and baselines.
"""
