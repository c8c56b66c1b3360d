//! One page module per analysis (form fields and result parts), reached
//! through the core's registry: the module of each `for_each_analysis!`
//! line is the page of that analysis, so adding an analysis to the
//! registry without its page here does not compile.

use leptos::prelude::*;
use tessera_core::analysis::{Analysis, Params};

use crate::form::{Page, PageCtx};
use crate::protocol::CurveMeta;

macro_rules! pages {
    ($($module:ident $variant:ident $ty:path,)*) => {
        $(pub mod $module;)*

        /// Every analysis' form parameters, kept while the user switches
        /// between analyses.
        #[derive(Clone, Copy)]
        pub struct Forms {
            $(pub $module: RwSignal<<$ty as Analysis>::Params>,)*
        }

        impl Default for Forms {
            fn default() -> Forms {
                Forms {
                    $($module: RwSignal::new(Default::default()),)*
                }
            }
        }

        impl Forms {
            /// The named analysis' parameters as a run sends them (tracked).
            pub fn params(&self, name: &str) -> Option<Params> {
                $(if name == <$ty as Analysis>::NAME {
                    return Some(Params::$variant(self.$module.get()));
                })*
                None
            }

            /// Fills a form from a link.
            pub fn set(&self, p: Params) {
                match p {
                    $(Params::$variant(p) => self.$module.set(p),)*
                }
            }

            /// Every page's effects on the chosen datasets, once.
            pub fn follow(&self, ctx: PageCtx) {
                $(<$module::Page as Page>::follow(self.$module, ctx);)*
            }

            /// The named analysis' form fields.
            pub fn form(&self, name: &str, ctx: PageCtx) -> AnyView {
                $(if name == <$ty as Analysis>::NAME {
                    return <$module::Page as Page>::form(self.$module, ctx);
                })*
                ().into_any()
            }
        }

        /// The line under a result's loss curve, as the analysis words it.
        pub fn final_score(analysis: &str, curves: &[CurveMeta]) -> Option<String> {
            $(if analysis == <$ty as Analysis>::NAME {
                return <$module::Page as Page>::final_score(curves);
            })*
            None
        }

        /// The caption of a result's line panels.
        pub fn lines_caption(analysis: &str) -> &'static str {
            $(if analysis == <$ty as Analysis>::NAME {
                return <$module::Page as Page>::lines_caption();
            })*
            ""
        }
    };
}

tessera_core::for_each_analysis!(pages);
