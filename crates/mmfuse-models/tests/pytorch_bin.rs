//! PyTorch checkpoints (`pytorch_model.bin`, ZIP and pre-1.6 legacy layouts, read with the
//! `pytorch-reader` crate) load to exactly the tensors of the same weights saved as safetensors
//! (`scripts/make_pytorch_bin_fixture.py`; one Linear weight is a transposed view on disk), and a
//! BERT folder holding only `pytorch_model.bin` gives the same hidden states.

use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use mmfuse_models::encoders::BertModel;
use mmfuse_models::pretrained::{LoadError, Weights};
use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/encoders/bert-tiny-bin")
}

#[test]
fn both_pytorch_layouts_hold_exactly_the_safetensors_values() {
    let d = Device::flex();
    let st = Weights::from_safetensors(fixture().join("model.safetensors"), &d).unwrap();
    for file in ["pytorch_model.bin", "pytorch_model_legacy.bin"] {
        let pt = Weights::open(fixture().join(file), &d).unwrap();
        assert_eq!(pt.keys(), st.keys(), "{file}: other tensor names");
        for k in st.keys() {
            let (a, sa) = st.get_f32_vec(k, None).unwrap();
            let (b, sb) = pt.get_f32_vec(k, None).unwrap();
            assert_eq!(sa, sb, "{file}: {k} shape");
            assert!(a == b, "{file}: {k} values differ");
        }
    }
}

#[test]
fn a_bert_folder_with_only_pytorch_model_bin_loads() {
    let d = Device::flex();
    let dir = std::env::temp_dir().join(format!("mmfuse-bert-bin-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["config.json", "pytorch_model.bin"] {
        std::fs::copy(fixture().join(f), dir.join(f)).unwrap();
    }
    let (from_bin, _) = BertModel::load(&dir, &d).unwrap();
    let (from_st, _) = BertModel::load(&fixture(), &d).unwrap(); // model.safetensors is preferred
    let ids = Tensor::<2, Int>::from_data(TensorData::new(vec![2i64, 7, 11, 29, 0, 3, 5, 9, 1, 0], [2, 5]), &d);
    let mask = Tensor::<2, Bool>::from_data(TensorData::new(vec![true, true, true, true, false, true, true, true, true, false], [2, 5]), &d);
    let a = from_bin.forward(ids.clone(), mask.clone(), None).into_data().try_to_vec::<f32>().unwrap();
    let b = from_st.forward(ids, mask, None).into_data().try_to_vec::<f32>().unwrap();
    assert!(a == b, "hidden states differ between the two formats");
    // a truncated checkpoint is an error naming the file, not a panic
    let bytes = std::fs::read(fixture().join("pytorch_model.bin")).unwrap();
    std::fs::write(dir.join("pytorch_model.bin"), &bytes[..bytes.len() / 2]).unwrap();
    let e = BertModel::load(&dir, &d).unwrap_err();
    assert!(matches!(e, LoadError::Format { .. }), "{e}");
    assert!(e.to_string().contains("pytorch_model.bin"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
