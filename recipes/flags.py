"""Command-line flags generated from a recipe's config dataclass: one flag per field."""

import argparse
import dataclasses
import json


def str2bool(text):
    """`true/false/1/0/yes/no/on/off` -> bool, for boolean flags."""
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean, got {text!r}")


def build_parser(config_class, description, config_help="named config"):
    """A parser with `--config`, `--output-dir` and a flag per field of `config_class`.

    Booleans take true/false, dict fields a JSON object; every flag defaults to
    None, meaning "keep the named config's value".
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", default="digits", help=config_help)
    parser.add_argument("--output-dir", required=True, help="where outputs go")
    for field in dataclasses.fields(config_class):
        flag = "--" + field.name.replace("_", "-")
        if field.type is bool:
            parser.add_argument(flag, type=str2bool, default=None)
        elif field.type is dict:
            parser.add_argument(flag, type=json.loads, default=None, help="JSON object")
        elif field.type in (int, float):
            parser.add_argument(flag, type=field.type, default=None)
        else:
            parser.add_argument(flag, default=None)
    return parser


def resolve_config(args, config_class, get_config):
    """The named config (`args.config`) with every flag that was given applied."""
    config = get_config(args.config)
    for field in dataclasses.fields(config_class):
        value = getattr(args, field.name)
        if value is not None:
            setattr(config, field.name, value)
    return config


def add_strategy_flags(parser):
    """`--strategy` and `--tpu-address`, as every recipe takes them."""
    parser.add_argument("--strategy", default="default",
                        help="distribution strategy (keras_mae.distribute.get_strategy): default, "
                             "mirrored, multi_worker, tpu (TensorFlow); data_parallel (JAX)")
    parser.add_argument("--tpu-address", default=None,
                        help="TPU name or grpc:// address for --strategy tpu (else TPU_NAME)")
    return parser
