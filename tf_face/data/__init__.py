"""UV-sample TFRecords (``records``), atomic shards (``shards``) and the
tf.data input pipeline (``dataset``)."""

from tf_face.data.dataset import DatasetReport, make_dataset, make_dataset_with_report, scan_shards
from tf_face.data.records import (FORMAT_VERSION, Extra, encode_example, extras_spec, fit_params,
                                  parse_example)
from tf_face.data.shards import (CorruptShardError, ShardWriter, check_shard, list_shards,
                                 read_index, write_shard)

__all__ = [
    "FORMAT_VERSION", "Extra", "encode_example", "extras_spec", "fit_params", "parse_example",
    "CorruptShardError", "ShardWriter", "check_shard", "list_shards", "read_index", "write_shard",
    "DatasetReport", "make_dataset", "make_dataset_with_report", "scan_shards",
]
