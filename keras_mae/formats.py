"""The format version of the files keras_mae writes, and the check of a file's version.

Model configs (`get_config`, hence `.keras` files and preset folders) and
checkpoint states carry `"format_version": FORMAT_VERSION`; a file without one
is version 1, and a file of a version this code does not read is refused
(`check_format_version`).
"""

# The layout of the configs and checkpoint states that keras_mae writes. Raise it (and teach
# the readers the new layout) when a change of layout would make an older reader misread a file.
FORMAT_VERSION = 1
READABLE_FORMAT_VERSIONS = (1,)


def check_format_version(saved, source):
    """The format version of a saved config or state, refusing one this code cannot read.

    Args:
        saved: dict, a saved config or checkpoint state; without a
            `"format_version"` entry it is version 1.
        source: str naming the file (or config) for the error message.

    Returns:
        int, the version.

    Raises:
        ValueError: naming `source`, when the version is not one of
            `READABLE_FORMAT_VERSIONS` (a file written by a later keras_mae).

    Example:
    ```python
    from keras_mae.formats import check_format_version
    check_format_version({"format_version": 1}, "preset/config.json")  # 1
    check_format_version({}, "preset/config.json")  # 1
    ```
    """
    version = saved.get("format_version", 1)
    if isinstance(version, bool) or version not in READABLE_FORMAT_VERSIONS:
        raise ValueError(
            f"{source} is of keras_mae format version {version!r}; this keras_mae reads "
            f"format versions {list(READABLE_FORMAT_VERSIONS)}. Load it with the keras_mae "
            f"release that wrote it or a later one. Received: format_version={version!r}"
        )
    return version
